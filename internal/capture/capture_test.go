package capture

import (
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// server starts a TCP server that runs handle for each connection and returns its address.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func msg(typ frame.MsgType, seq uint16, ann frame.Annotations, payload string) []byte {
	h := frame.Header{Type: typ, Seq: seq, DataLen: len(payload), Serializer: frame.Serpent}
	b, _ := frame.AppendHead(nil, h, ann)
	return append(b, payload...)
}

// echoResults answers every message with a RESULT of the same seq until EOF.
func echoResults(c net.Conn) {
	r := frame.NewReader(c, 0, frame.Limits{})
	for {
		m, err := r.Next()
		if err != nil {
			return
		}
		if err := r.ReadRest(&m); err != nil {
			return
		}
		if _, err := c.Write(msg(frame.Result, m.Header.Seq, nil, "reply to "+string(m.Payload))); err != nil {
			return
		}
	}
}

func TestRelayRecordsBothDirections(t *testing.T) {
	r, err := Listen("unit", server(t, echoResults))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ann := frame.AppendAnnotation(nil, frame.CORR, []byte("0123456789abcdef"))
	sent := [][]byte{msg(frame.Connect, 0, ann, "hello"), msg(frame.Invoke, 1, nil, strings.Repeat("x", 3000))}
	var got [][]byte
	rd := frame.NewReader(c, 0, frame.Limits{})
	for _, m := range sent {
		for i := range m { // one byte per write: the relay must reassemble
			if _, err := c.Write(m[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		reply, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := rd.ReadRest(&reply); err != nil {
			t.Fatal(err)
		}
		got = append(got, append(append(append([]byte(nil), reply.Raw...), reply.Annotations...), reply.Payload...))
	}
	local := c.LocalAddr().String()
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	if conns := r.Conns(); len(conns) != 1 || conns[0] != (Conn{Num: 0, Client: local}) {
		t.Fatalf("Conns = %+v, want one from %s", conns, local)
	}
	var want []Record
	for i := range sent {
		want = append(want,
			Record{Scenario: "unit", Conn: 0, Dir: ClientToServer, Index: i, Hex: hex.EncodeToString(sent[i])},
			Record{Scenario: "unit", Conn: 0, Dir: ServerToClient, Index: i, Hex: hex.EncodeToString(got[i])})
	}
	recs := r.Records()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
		}
	}
}

func TestRelayReportsBrokenStreams(t *testing.T) {
	for name, tc := range map[string]struct {
		send []byte
		want string
	}{
		"not pyro":  {[]byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n"), "bad magic"},
		"truncated": {msg(frame.Invoke, 1, nil, "payload")[:30], "stream ended 30 bytes into message 0"},
	} {
		t.Run(name, func(t *testing.T) {
			var upstream bytes.Buffer
			done := make(chan struct{})
			addr := server(t, func(c net.Conn) {
				defer close(done)
				io.Copy(&upstream, c)
			})
			r, err := Listen("broken", addr)
			if err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			c.Write(tc.send)
			c.Close()
			<-done
			err = r.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Close = %v, want an error with %q", err, tc.want)
			}
			if !bytes.Equal(upstream.Bytes(), tc.send) {
				t.Errorf("upstream got %q, want the bytes unchanged %q", upstream.Bytes(), tc.send)
			}
			if recs := r.Records(); len(recs) != 0 {
				t.Errorf("records %+v, want none", recs)
			}
		})
	}
}

func TestRelayDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r, err := Listen("dead", dead)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c) // the relay closes the client when it cannot dial
	c.Close()
	if err := r.Close(); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Fatalf("Close = %v, want a dial error", err)
	}
}
