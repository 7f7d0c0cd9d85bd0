package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	line := "4321 (a (weird) name) S 17 4321 4321 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 3 0 100 0 0\n"
	pid, st, ok := parseProcStat([]byte(line))
	if !ok || pid != 4321 || st.ppid != 17 || st.ticks != 175 {
		t.Errorf("got %d %+v %v", pid, st, ok)
	}
	for _, bad := range []string{"", "x (y) S", "12 (comm S 1 2", "12 (c) S 1 2 3"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	// A child that burns CPU counts for its parent's PID too.
	cmd := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self := os.Getpid()
	deadline := time.Now().Add(5 * time.Second)
	var own, child time.Duration
	for time.Now().Before(deadline) {
		var err error
		if child, err = ProcessCPU([]int{cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if own, err = ProcessCPU([]int{self}); err != nil {
			t.Fatal(err)
		}
		if child >= 50*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if child < 50*time.Millisecond || own < child {
		t.Errorf("child %v, self with descendants %v", child, own)
	}
	if _, err := ProcessCPU([]int{1 << 30}); err == nil {
		t.Error("no error for a PID that does not exist")
	}
	if _, err := ProcessCPU(nil); err == nil {
		t.Error("no error for no PID")
	}
}

func TestRunSamplesCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	s := startEcho(t, nil)
	addr := s.Addr().String()
	// The echo server runs in this process: its CPU is this process's.
	cfg := Config{Targets: []Target{{"direct", addr}, {"sampled", addr}}, Conns: 4, Duration: 300 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Rounds: 2, Payload: 16 << 10, CPU: map[string][]int{"sampled": {os.Getpid()}}}
	res := run(t, cfg)
	d, sm := res.Targets[0], res.Targets[1]
	if d.CPUSampled || !sm.CPUSampled || d.Median.CPU != 0 || d.Median.CPUPerCall != 0 {
		t.Fatalf("sampled: %v %v, direct CPU %v", d.CPUSampled, sm.CPUSampled, d.Median.CPU)
	}
	for _, rr := range sm.Rounds {
		if rr.CPU < 0 || rr.CPUPerCall < 0 || rr.CPU > 2*time.Second {
			t.Errorf("round %d: CPU %v, %v per call", rr.Round, rr.CPU, rr.CPUPerCall)
		}
	}
	if sm.Median.CPU <= 0 || sm.Median.CPUPerCall <= 0 {
		t.Errorf("median CPU %v, %v per call", sm.Median.CPU, sm.Median.CPUPerCall)
	}
	var tbl, js bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "CPU/call") {
		t.Errorf("table lacks CPU/call:\n%s", tbl.String())
	}
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Config struct {
			CPU map[string][]int `json:"cpu_pids"`
		} `json:"config"`
		Targets []struct {
			Median struct {
				CPUPerCall *float64 `json:"cpu_us_per_call"`
			}
		}
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Targets[0].Median.CPUPerCall != nil || back.Targets[1].Median.CPUPerCall == nil || *back.Targets[1].Median.CPUPerCall <= 0 ||
		len(back.Config.CPU["sampled"]) != 1 {
		t.Errorf("json: %s", js.String())
	}
}

func TestConfigValidateCPU(t *testing.T) {
	base := Config{Targets: []Target{{"a", "127.0.0.1:1"}}}
	for _, cpu := range []map[string][]int{{"b": {1}}, {"a": nil}, {"a": {0}}} {
		c := base
		c.CPU = cpu
		if c.Validate() == nil {
			t.Errorf("%v accepted", cpu)
		}
	}
	base.CPU = map[string][]int{"a": {1, 2}}
	if err := base.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNewRoundResultAndSummarize(t *testing.T) {
	res := &Result{Config: Config{Description: "from elsewhere", Rounds: 2}}
	for i, n := range []string{"direct", "proxy"} {
		tr := &TargetResult{Target: Target{Name: n, Addr: "x"}, CPUSampled: i == 1}
		for round := 1; round <= 2; round++ {
			h := NewHistogram()
			for v := int64(1); v <= 1000; v++ {
				h.RecordValue(v * 1000 * int64(i+1))
			}
			s := Stats{Calls: 1000, Elapsed: time.Second / time.Duration(i+1)}
			if i == 1 {
				s.CPU = 10 * time.Millisecond
			}
			tr.Rounds = append(tr.Rounds, NewRoundResult(round, time.Time{}, s, h))
		}
		res.Targets = append(res.Targets, tr)
	}
	res.Summarize()
	if res.Config.Describe() != "from elsewhere" {
		t.Errorf("describe %q", res.Config.Describe())
	}
	p := res.Targets[1]
	if p.Median.CallsPerSec != 2000 || p.Ratio.CallsPerSec != 2 || p.Median.CPUPerCall != 10*time.Microsecond ||
		p.Median.P50 < 990*time.Microsecond || p.Median.P50 > 1010*time.Microsecond || p.Latency.TotalCount() != 2000 {
		t.Errorf("%+v ratio %+v", p.Median, p.Ratio)
	}
	var b bytes.Buffer
	if err := res.WriteChart(&b); err != nil || !strings.Contains(b.String(), "from elsewhere") {
		t.Errorf("chart: %v", err)
	}
}
