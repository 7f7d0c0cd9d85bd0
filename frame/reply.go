package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file encodes the two payloads the dispatcher writes itself: the reason string of a
// CONNECTFAIL and the exception of a RESULT with FlagException. The bytes are those Pyro4
// 4.82 (Python 3.11) produces for the same values, so a real client decodes them with its
// own serializer (util.py get_serializer_by_id(id).deserializeData) and raises the class:
//
//   - serpent: serpent.dumps text: the header line, then Python repr() literals;
//   - json: json.dumps(..., ensure_ascii=False) encoded as UTF-8;
//   - marshal: marshal.dumps (version 4) of freshly built objects: no FLAG_REF bits and no
//     interned string codes, which CPython adds only for shared or interned objects;
//   - pickle, dill, cloudpickle: pickle.dumps(..., protocol=2); dill.loads and
//     cloudpickle.loads read standard pickles;
//   - msgpack: msgpack.packb(..., use_bin_type=True).
//
// Strings must reach Python as valid UTF-8 (serpent and json decode strictly), so every
// byte of a message that is not part of a valid UTF-8 sequence is replaced by U+FFFD, one
// per byte, as Go's for-range over a string yields it; a UTF-8 encoded surrogate counts as
// invalid. Serpent escapes the characters Python's str.isprintable() rejects using Go's
// Unicode tables, which are newer than Python 3.11's Unicode 14: a character assigned
// later is written as is where Python 3.11 would write a \U escape. Both read back as the
// same string.

// Exception classes the dispatcher answers calls with.
const (
	ExcCommunicationError = "Pyro4.errors.CommunicationError"
	ExcDaemonError        = "Pyro4.errors.DaemonError"
	ExcSecurityError      = "Pyro4.errors.SecurityError"
	ExcSerializeError     = "Pyro4.errors.SerializeError"
)

// ErrUnsupportedSerializer is wrapped by the errors of AppendStringPayload and
// AppendExceptionPayload for a serializer id they cannot encode.
var ErrUnsupportedSerializer = errors.New("frame: unsupported serializer")

// serpentHeader is the first line serpent writes (serpent.Serializer.serialize).
const serpentHeader = "# serpent utf-8 python3.2\n"

// AppendStringPayload appends s encoded as a plain string value in serializer ser (the
// CONNECTFAIL reason payload) and returns the extended slice. On error dst is returned
// unchanged. Invalid UTF-8 in s is replaced as described at the top of this file.
//
// A Pyro4 daemon that refuses a client's serializer, or has no free worker, sends its
// CONNECTFAIL reason in marshal (Daemon._handshake); a client decodes the reply by the
// serializer id in its header, and marshal is always available in Pyro4, so a marshal
// reason is readable by every client whatever serializer it uses.
func AppendStringPayload(dst []byte, ser Serializer, s string) ([]byte, error) {
	start := len(dst)
	s = validUTF8(s)
	switch ser {
	case Serpent:
		dst = append(dst, serpentHeader...)
		dst = AppendPyRepr(dst, s)
	case JSON:
		dst = AppendPyJSONString(dst, s, false)
	case Marshal:
		dst = appendMarshalString(dst, s)
	case Pickle, Dill, Cloudpickle:
		dst = append(dst, pickleProto, 2)
		dst = appendPickleString(dst, s)
		dst = append(dst, pickleBinput, 0, pickleStop)
	case Msgpack:
		dst = appendMsgpackString(dst, s)
	default:
		return dst, fmt.Errorf("%w %d", ErrUnsupportedSerializer, uint16(ser))
	}
	return checkPayloadLen(dst, start)
}

// AppendExceptionPayload appends a Pyro4 exception of the given class (such as
// ExcCommunicationError) with the single argument message, as serializer ser encodes
// exceptions, and returns the extended slice. Serpent, json, marshal and msgpack carry the
// dict of util.py SerializerBase.class_to_dict:
//
//	{"__class__": class, "__exception__": true, "args": [message], "attributes": {}}
//
// (args is a tuple where the serializer has tuples); pickle, dill and cloudpickle carry a
// pickle that calls the class with args (message,). class must be a dotted Python path of
// at least two ASCII identifiers without "__" (Pyro4 refuses to deserialize such names);
// it is not checked that the client knows the class: SerializerBase.dict_to_class only
// accepts Pyro4.errors.*, builtins.* exceptions and a few others. On error dst is returned
// unchanged. Invalid UTF-8 in message is replaced as described at the top of this file.
func AppendExceptionPayload(dst []byte, ser Serializer, class, message string) ([]byte, error) {
	start := len(dst)
	dot, err := checkClass(class)
	if err != nil {
		return dst, err
	}
	message = validUTF8(message)
	switch ser {
	case Serpent:
		dst = append(dst, serpentHeader...)
		dst = append(dst, "{'__class__':"...)
		dst = AppendPyRepr(dst, class)
		dst = append(dst, ",'__exception__':True,'args':("...)
		dst = AppendPyRepr(dst, message)
		dst = append(dst, ",),'attributes':{}}"...)
	case JSON:
		dst = append(dst, `{"__class__": `...)
		dst = AppendPyJSONString(dst, class, false)
		dst = append(dst, `, "__exception__": true, "args": [`...)
		dst = AppendPyJSONString(dst, message, false)
		dst = append(dst, `], "attributes": {}}`...)
	case Marshal:
		dst = append(dst, '{')
		dst = appendMarshalString(dst, "__class__")
		dst = appendMarshalString(dst, class)
		dst = appendMarshalString(dst, "__exception__")
		dst = append(dst, 'T')
		dst = appendMarshalString(dst, "args")
		dst = append(dst, ')', 1)
		dst = appendMarshalString(dst, message)
		dst = appendMarshalString(dst, "attributes")
		dst = append(dst, '{', '0', '0')
	case Pickle, Dill, Cloudpickle:
		// GLOBAL module\nname\n, BINPUT 0, the message, BINPUT 1, TUPLE1, BINPUT 2,
		// REDUCE, BINPUT 3, STOP: what pickle.dumps(exc, 2) writes for an exception
		// without attributes (BaseException.__reduce__ gives (class, args)).
		dst = append(dst, pickleProto, 2, pickleGlobal)
		dst = append(dst, class[:dot]...)
		dst = append(dst, '\n')
		dst = append(dst, class[dot+1:]...)
		dst = append(dst, '\n', pickleBinput, 0)
		dst = appendPickleString(dst, message)
		dst = append(dst, pickleBinput, 1, pickleTuple1, pickleBinput, 2, pickleReduce, pickleBinput, 3, pickleStop)
	case Msgpack:
		dst = append(dst, 0x84) // fixmap of 4
		dst = appendMsgpackString(dst, "__class__")
		dst = appendMsgpackString(dst, class)
		dst = appendMsgpackString(dst, "__exception__")
		dst = append(dst, 0xc3) // true
		dst = appendMsgpackString(dst, "args")
		dst = append(dst, 0x91) // fixarray of 1
		dst = appendMsgpackString(dst, message)
		dst = appendMsgpackString(dst, "attributes")
		dst = append(dst, 0x80) // empty fixmap
	default:
		return dst, fmt.Errorf("%w %d", ErrUnsupportedSerializer, uint16(ser))
	}
	return checkPayloadLen(dst, start)
}

// AppendMessage appends a complete message: the header h with DataLen and AnnLen set from
// payload and ann and the checksum computed, the annotation chunks ann as given (nil for
// none) and the payload. The caller keeps ann within 65535 bytes and payload within
// MaxDataLen, and sets Type, Flags, Seq and Serializer: for a CONNECTFAIL the request's seq
// and the payload's serializer; for an exception RESULT also FlagException.
func AppendMessage(dst []byte, h Header, ann Annotations, payload []byte) []byte {
	h.DataLen = len(payload)
	dst, _ = AppendHead(dst, h, ann)
	return append(dst, payload...)
}

func checkPayloadLen(dst []byte, start int) ([]byte, error) {
	if n := len(dst) - start; n > MaxDataLen {
		return dst[:start], fmt.Errorf("frame: encoded payload of %d bytes exceeds the maximum of %d", n, MaxDataLen)
	}
	return dst, nil
}

// checkClass validates an exception class path and returns the index of its last dot.
func checkClass(class string) (int, error) {
	bad := func(why string) (int, error) {
		return 0, fmt.Errorf("frame: invalid exception class %q: %s", class, why)
	}
	if strings.Contains(class, "__") {
		return bad(`Pyro4 refuses class names containing "__"`)
	}
	dot := strings.LastIndexByte(class, '.')
	if dot < 0 {
		return bad("want module.Name")
	}
	segStart := 0 // index of the first character of the current name
	for i := 0; i <= len(class); i++ {
		if i == len(class) || class[i] == '.' {
			if i == segStart {
				return bad("empty name")
			}
			segStart = i + 1
			continue
		}
		c := class[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == segStart || c < '0' || c > '9') {
			return bad("not a dotted path of ASCII identifiers")
		}
	}
	return dot, nil
}

// validUTF8 returns s with every byte that is not part of a valid UTF-8 sequence replaced
// by U+FFFD. It does not allocate when s is valid.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

const hexDigits = "0123456789abcdef"

// AppendPyRepr appends Python 3's repr() of the valid UTF-8 string s (CPython
// unicode_repr): single quotes unless s contains ' and no ", backslash escapes for the
// quote, backslash, \t \n \r, \xhh for other ASCII controls and DEL, and \xhh, \uhhhh or
// \Uhhhhhhhh for non-ASCII characters that are not printable.
func AppendPyRepr(dst []byte, s string) []byte {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	dst = append(dst, quote)
	run := 0 // start of the characters not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != 0x7f && c != quote && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[run:i]...)
			i++
			run = i
			switch {
			case c == quote || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsPrint(r) {
			i += n
			continue
		}
		dst = append(dst, s[run:i]...)
		i += n
		run = i
		switch {
		case r <= 0xff:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&15])
		case r <= 0xffff:
			dst = append(dst, '\\', 'u')
			dst = appendHex(dst, uint32(r), 4)
		default:
			dst = append(dst, '\\', 'U')
			dst = appendHex(dst, uint32(r), 8)
		}
	}
	dst = append(dst, s[run:]...)
	return append(dst, quote)
}

func appendHex(dst []byte, v uint32, digits int) []byte {
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>shift)&15])
	}
	return dst
}

// Python marshal (version 4) type codes for strings.
const (
	marshalShortASCII = 'z' // 1-byte length
	marshalASCII      = 'a' // 4-byte little-endian length
	marshalUnicode    = 'u' // 4-byte little-endian length, UTF-8
)

// appendMarshalString appends the valid UTF-8 string s as marshal.dumps writes a str that
// is neither interned nor shared: short ascii, ascii or utf-8 by content and length.
func appendMarshalString(dst []byte, s string) []byte {
	if isASCII(s) {
		if len(s) < 256 {
			dst = append(dst, marshalShortASCII, byte(len(s)))
			return append(dst, s...)
		}
		dst = append(dst, marshalASCII)
	} else {
		dst = append(dst, marshalUnicode)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Pickle opcodes (Python pickle.py) used by protocol 2.
const (
	pickleProto   = 0x80
	pickleGlobal  = 'c'
	pickleBinput  = 'q'
	pickleUnicode = 'X' // BINUNICODE: 4-byte little-endian length, UTF-8
	pickleTuple1  = 0x85
	pickleReduce  = 'R'
	pickleStop    = '.'
)

func appendPickleString(dst []byte, s string) []byte {
	dst = append(dst, pickleUnicode)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendMsgpackString appends s as a msgpack str (fixstr, str 8, str 16 or str 32).
func appendMsgpackString(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n < 1<<8:
		dst = append(dst, 0xd9, byte(n))
	case n < 1<<16:
		dst = append(dst, 0xda)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0xdb)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, s...)
}
