package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// startEchoCommand runs the echo command in-process and returns its URI's address.
func startEchoCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	o := echoOptions{listen: "127.0.0.1:0", maxMessage: 1 << 20, quiet: true}
	go func() {
		done <- serveEcho(ctx, o, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("echo printed no URI: %v", err)
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("echo exited %d: %s", code, stderr.String())
		}
	})
	uri := strings.TrimSpace(line)
	addr, ok := strings.CutPrefix(uri, "PYRO:echo@")
	if !ok {
		t.Fatalf("echo printed %q", uri)
	}
	return addr
}

func TestBenchCommand(t *testing.T) {
	addr := startEchoCommand(t)
	dir := t.TempDir()
	jsonFile, chartFile := filepath.Join(dir, "r.json"), filepath.Join(dir, "c.svg")
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "-t", "direct=" + addr, "-t", "again=" + addr, "--calls", "200", "--conns", "2",
		"--serializer", "marshal", "--payload", "1KiB", "--warmup", "0s", "--rounds", "2",
		"--cpu", "again=" + strconv.Itoa(os.Getpid()), "--json", jsonFile, "--chart", chartFile}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"x = 1 KiB str, marshal, 2 conns", "direct", "again", "calls/s vs direct", "calls/s by round", "CPU/call"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr is not a terminal, yet: %q", stderr.String())
	}
	var rep struct {
		Targets []struct {
			Name   string
			Median struct{ Calls int64 }
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Targets) != 2 || rep.Targets[0].Median.Calls != 400 {
		t.Errorf("json %v: %s", err, b)
	}
	svg, err := os.ReadFile(chartFile)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("chart: %v", err)
		}
	}
}

func TestBenchCommandErrors(t *testing.T) {
	addr := startEchoCommand(t)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"bench"}, 2, "no --target"},
		{[]string{"bench", "-t", addr, "--calls", "5", "--duration", "1s"}, 2, "exclusive"},
		{[]string{"bench", "-t", addr, "--serializer", "pickle"}, 2, "serializer"},
		{[]string{"bench", "-t", addr, "--mode", "batch"}, 2, "unknown mode"},
		{[]string{"bench", "-t", "=x"}, 2, "bad target"},
		{[]string{"bench", "-t", addr, "--cpu", "x"}, 2, "bad --cpu"},
		{[]string{"bench", "-t", "a=" + addr, "--cpu", "a=1,b"}, 2, "not a PID"},
		{[]string{"bench", "-t", "a=" + addr, "--cpu", "b=" + strconv.Itoa(os.Getpid())}, 2, "not a target"},
		{[]string{"bench", "-t", "a=" + addr, "--cpu", "a=1073741824"}, 2, "no process"},
		// Calls that fail make the exit status 1, with the report still printed.
		{[]string{"bench", "-t", addr, "--object", "other", "--calls", "3", "--timeout", "1s", "--warmup", "0s"}, 1, ""},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.err) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr.String())
		}
	}
}

func TestEchoCommandFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"echo", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "oneway(x)") {
		t.Errorf("help: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"echo", "--listen", "256.0.0.1:1"}, &stdout, &stderr); code != 1 {
		t.Errorf("bad address: exit %d %q", code, stderr.String())
	}
	if code := run([]string{"echo", "--delay", "-1s"}, &stdout, &stderr); code != 2 {
		t.Errorf("negative delay: exit %d", code)
	}
}
