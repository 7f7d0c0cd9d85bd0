// Command gen regenerates frame/testdata/vectors.jsonl: go run ./internal/capture/gen -out FILE.
// It runs Pyro4 daemons and a client (the .py files here, /usr/bin/python3) through capture
// relays and takes every expected value from Python, none from this project's decoders.
package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/capture"
)

//go:embed daemon.py client.py parse.py
var scripts embed.FS

// hmacKey signs the messages of the hmac scenario (daemon, client and parser share it).
const hmacKey = "pyro-dispatch golden key"

// scenarios in the order they run, with the daemon each talks to (see daemon.py).
var scenarios = []struct{ name, daemon string }{
	{"connect", "plain"},
	{"connect_nometa", "plain"},
	{"connectfail", "plain"},
	{"call", "plain"},
	{"exception", "plain"},
	{"oneway", "plain"},
	{"batch", "plain"},
	{"blob", "plain"},
	{"annotations", "annotated"},
	{"correlation", "plain"},
	{"stream", "plain"},
	{"ping", "plain"},
	{"compression", "compress"},
	{"hmac", "hmac"},
}

// vector is one line of the output file.
type vector struct {
	capture.Record
	Header      json.RawMessage `json:"header"`           // from Python's struct.unpack
	Annotations json.RawMessage `json:"annotations"`      // from Pyro4's Message.recv, in wire order
	Py          json.RawMessage `json:"py,omitempty"`     // what Pyro4's serializers decode
	Expect      json.RawMessage `json:"expect,omitempty"` // what the client sent (c2s only)
}

func main() {
	out := flag.String("out", "frame/testdata/vectors.jsonl", "vectors file to write")
	python := flag.String("python", "/usr/bin/python3", "Python with Pyro4 4.82")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*out, *python, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out, python string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "pyro-capture")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"daemon.py", "client.py", "parse.py"} {
		b, _ := scripts.ReadFile(name)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	script := func(name string) string { return filepath.Join(dir, name) }

	ports := map[string]int{}
	for _, args := range [][]string{{}, {"--compress"}} {
		stop, got, err := startDaemon(ctx, python, append([]string{script("daemon.py"), hmacKey}, args...))
		if err != nil {
			return err
		}
		defer stop()
		for k, v := range got {
			ports[k] = v
		}
	}

	relays := make([]*capture.Relay, 0, len(scenarios))
	var plan [][2]string
	for _, sc := range scenarios {
		port, ok := ports[sc.daemon]
		if !ok {
			return fmt.Errorf("no %q daemon", sc.daemon)
		}
		r, err := capture.Listen(sc.name, net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
		if err != nil {
			return err
		}
		defer r.Abort()
		relays = append(relays, r)
		plan = append(plan, [2]string{sc.name, r.Addr()})
	}
	planJSON, _ := json.Marshal(plan)

	cmd := exec.CommandContext(ctx, python, script("client.py"), hmacKey, string(planJSON))
	cmd.Stderr = os.Stderr
	clientOut, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("client.py: %w", err)
	}

	var records []capture.Record
	portOf := map[string]map[int]int{} // scenario -> conn -> client port
	for _, r := range relays {
		if err := closeRelay(ctx, r); err != nil {
			return err
		}
		records = append(records, r.Records()...)
		portOf[r.Scenario()] = map[int]int{}
		for _, c := range r.Conns() {
			_, p, _ := net.SplitHostPort(c.Client)
			port, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("client address %q: %w", c.Client, err)
			}
			portOf[r.Scenario()][c.Num] = port
		}
	}

	parsed, err := parseAll(ctx, python, script("parse.py"), records)
	if err != nil {
		return err
	}
	vectors, err := merge(records, parsed, portOf, clientOut)
	if err != nil {
		return err
	}
	if err := write(out, vectors); err != nil {
		return err
	}
	summarize(vectors)
	return nil
}

// startDaemon runs daemon.py and returns a stop function and the ports it printed.
func startDaemon(ctx context.Context, python string, args []string) (func(), map[string]int, error) {
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		stdin.Close() // daemon.py shuts down at EOF on stdin
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	ports := map[string]int{}
	if err == nil {
		err = json.Unmarshal(line, &ports)
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("daemon.py %v: %w", args[2:], err)
	}
	return stop, ports, nil
}

// closeRelay waits for a relay's connections to end, aborting them when ctx expires.
func closeRelay(ctx context.Context, r *capture.Relay) error {
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		r.Abort()
		return errors.Join(ctx.Err(), <-done)
	}
}

// parseAll has parse.py parse every record, in order.
func parseAll(ctx context.Context, python, script string, records []capture.Record) ([]map[string]json.RawMessage, error) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, rec := range records {
		req := map[string]any{"hex": rec.Hex, "hmac_key": nil}
		if rec.Scenario == "hmac" {
			req["hmac_key"] = hmacKey
		}
		if err := enc.Encode(req); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, python, script)
	cmd.Stdin = &in
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("parse.py: %w", err)
	}
	var parsed []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("parse.py output: %w", err)
		}
		parsed = append(parsed, m)
	}
	if len(parsed) != len(records) {
		return nil, fmt.Errorf("parse.py parsed %d of %d messages", len(parsed), len(records))
	}
	return parsed, nil
}

// expectKey finds the message a client line describes.
type expectKey struct {
	scenario string
	port     int
	typ, seq int
}

// merge joins records, Pyro4's parse and the client's lines. Every client line must match
// exactly one client-to-server message and every such message must have a line.
func merge(records []capture.Record, parsed []map[string]json.RawMessage, portOf map[string]map[int]int, clientOut []byte) ([]vector, error) {
	expects := map[expectKey]json.RawMessage{}
	for _, line := range bytes.Split(bytes.TrimSpace(clientOut), []byte("\n")) {
		var e map[string]any
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("client.py output %q: %w", line, err)
		}
		k := expectKey{scenario: e["scenario"].(string), port: int(e["port"].(float64)),
			typ: int(e["type"].(float64)), seq: int(e["seq"].(float64))}
		delete(e, "scenario")
		delete(e, "port") // meaningless once matched
		b, _ := json.Marshal(e)
		if _, dup := expects[k]; dup {
			return nil, fmt.Errorf("two client lines for %+v", k)
		}
		expects[k] = b
	}
	vectors := make([]vector, len(records))
	for i, rec := range records {
		p := parsed[i]
		v := vector{Record: rec, Header: p["header"], Annotations: p["annotations"]}
		if string(p["py"]) != "{}" {
			v.Py = p["py"]
		}
		if rec.Dir == capture.ClientToServer {
			var h struct{ Type, Seq int }
			if err := json.Unmarshal(p["header"], &h); err != nil {
				return nil, err
			}
			k := expectKey{rec.Scenario, portOf[rec.Scenario][rec.Conn], h.Type, h.Seq}
			e, ok := expects[k]
			if !ok {
				return nil, fmt.Errorf("%s conn %d c2s message %d (type %d seq %d): the client did not say it sent it",
					rec.Scenario, rec.Conn, rec.Index, h.Type, h.Seq)
			}
			delete(expects, k)
			v.Expect = e
		}
		vectors[i] = v
	}
	for k := range expects {
		return nil, fmt.Errorf("client line %+v matches no captured message", k)
	}
	return vectors, nil
}

func write(path string, vectors []vector) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, v := range vectors {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// summarize prints what was captured to stderr.
func summarize(vectors []vector) {
	perScenario := map[string]int{}
	perKind := map[string]int{}
	size := 0
	for _, v := range vectors {
		var h struct{ Type, Flags, Serializer int }
		_ = json.Unmarshal(v.Header, &h)
		perScenario[v.Scenario]++
		kind := fmt.Sprintf("%s %-11s ser=%d", v.Dir, typeNames[h.Type], h.Serializer)
		if h.Flags != 0 {
			kind += fmt.Sprintf(" flags=%d", h.Flags)
		}
		perKind[kind]++
		size += len(v.Hex) / 2
	}
	fmt.Fprintf(os.Stderr, "%d messages, %d bytes of traffic\n", len(vectors), size)
	for _, sc := range scenarios {
		fmt.Fprintf(os.Stderr, "  %-15s %d\n", sc.name, perScenario[sc.name])
	}
	kinds := make([]string, 0, len(perKind))
	for k := range perKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintln(os.Stderr, strings.Repeat("-", 40))
	for _, k := range kinds {
		fmt.Fprintf(os.Stderr, "  %-45s %d\n", k, perKind[k])
	}
}

var typeNames = map[int]string{1: "CONNECT", 2: "CONNECTOK", 3: "CONNECTFAIL", 4: "INVOKE", 5: "RESULT", 6: "PING"}
