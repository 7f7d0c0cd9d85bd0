package httpgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// kwarg is one keyword argument: its name and its value as JSON text.
type kwarg struct {
	name  string
	value []byte
}

// param collects the string values of one form or query parameter, in order.
type param struct {
	name   string
	values []string
}

// parseQS parses an application/x-www-form-urlencoded string the way Python's
// urllib.parse.parse_qs(qs, keep_blank_values=0) does: '&' separates fields (';' does
// not), fields without '=' or with an empty value are dropped, '+' is a space and bad
// percent escapes are kept literally. Values are decoded as UTF-8. It appends to ps,
// keeping the order in which names first appear.
func parseQS(ps []param, qs string) []param {
	for field := range strings.SplitSeq(qs, "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok || value == "" {
			continue
		}
		name, value = unquotePlus(name), unquotePlus(value)
		found := false
		for i := range ps {
			if ps[i].name == name {
				ps[i].values = append(ps[i].values, value)
				found = true
				break
			}
		}
		if !found {
			if n := len(ps); n < cap(ps) { // a slot of a pooled request: reuse its values
				ps = ps[:n+1]
				ps[n].name, ps[n].values = name, append(ps[n].values[:0], value)
			} else {
				ps = append(ps, param{name: name, values: []string{value}})
			}
		}
	}
	return ps
}

// unquotePlus is Python's urllib.parse.unquote_plus with UTF-8 and errors='replace'.
func unquotePlus(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// setKwarg replaces the value of name in kw, or appends it.
func setKwarg(kw []kwarg, name string, value []byte) []kwarg {
	for i := range kw {
		if kw[i].name == name {
			kw[i].value = value
			return kw
		}
	}
	return append(kw, kwarg{name: name, value: value})
}

// jsonCall is the gateway's extension: a request body {"args": [...], "kwargs": {...}}.
type jsonCall struct {
	args   [][]byte
	kwargs []kwarg // in the body's order
}

// parseJSONCall decodes a JSON call body. Both members are optional; others are an error.
func parseJSONCall(body []byte) (jsonCall, error) {
	var jc jsonCall
	if len(bytes.TrimSpace(body)) == 0 {
		return jc, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return jc, errors.New("the JSON body must be an object {\"args\": [...], \"kwargs\": {...}}")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return jc, err
		}
		switch key, _ := t.(string); key {
		case "args":
			var args []json.RawMessage
			if err := dec.Decode(&args); err != nil {
				return jc, fmt.Errorf("\"args\" must be a list: %v", err)
			}
			for _, a := range args {
				jc.args = append(jc.args, []byte(a))
			}
		case "kwargs":
			if t, err := dec.Token(); err != nil || t != json.Delim('{') {
				return jc, errors.New("\"kwargs\" must be an object")
			}
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return jc, err
				}
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					return jc, err
				}
				jc.kwargs = setKwarg(jc.kwargs, t.(string), []byte(v))
			}
			if _, err := dec.Token(); err != nil {
				return jc, err
			}
		default:
			return jc, fmt.Errorf("unknown member %q in the JSON body (only \"args\" and \"kwargs\")", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return jc, err
	}
	if _, err := dec.Token(); err == nil {
		return jc, errors.New("data after the JSON body's object")
	}
	return jc, nil
}
