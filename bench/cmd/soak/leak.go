package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
)

// This file: the dispatcher's resources over time (RSS and file descriptors from
// /proc/PID, goroutines from its /metrics) and the leak check at the end: back within
// leakSlack of the idle baseline taken after the warm-up, and a goroutine dump (the
// admin listener's /debug/pprof/goroutine) in which no goroutine outlives its
// connection.

// leakSlack is how far above its baseline a resource may end.
const leakSlack = 0.10

// sampleEvery is how often resources are sampled.
const sampleEvery = 5 * time.Second

// Sample is the dispatcher's resources at one moment.
type Sample struct {
	At         time.Time
	RSS        int64 // bytes
	FDs        int
	Goroutines int
	Clients    int     // client connections (pyro_dispatch_client_connections)
	Load       float64 // the machine's 1-minute load average: other work shows here
}

// procResources reads a process's resident set size and open file descriptors.
func procResources(pid int) (rss int64, fds int, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss, err = vmRSS(status); err != nil {
		return 0, 0, err
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, len(ents), err
}

// vmRSS reads the VmRSS line of /proc/PID/status.
func vmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/PID/status")
}

// sample takes the dispatcher's resources now.
func (s *soak) sample(ctx context.Context) (Sample, error) {
	sm := Sample{At: time.Now()}
	var err error
	if sm.RSS, sm.FDs, err = procResources(s.w.disp.pid()); err != nil {
		return sm, err
	}
	m, err := s.adm.get(ctx, "/metrics")
	if err != nil {
		return sm, err
	}
	g, err := metric(m, "go_goroutines")
	if err != nil {
		return sm, err
	}
	c, err := metric(m, "pyro_dispatch_client_connections")
	if err != nil {
		return sm, err
	}
	sm.Goroutines, sm.Clients = int(g), int(c)
	if avg, err := os.ReadFile("/proc/loadavg"); err == nil {
		sm.Load, _ = strconv.ParseFloat(strings.Fields(string(avg) + " 0")[0], 64)
	}
	return sm, nil
}

// steady takes n samples a second apart and returns their per-resource medians: a
// health check or a pool's background dial in flight does not make a baseline.
func (s *soak) steady(ctx context.Context, n int) (Sample, error) {
	var ss []Sample
	for i := range n {
		if i > 0 {
			time.Sleep(time.Second)
		}
		sm, err := s.sample(ctx)
		if err != nil {
			return sm, err
		}
		ss = append(ss, sm)
	}
	med := ss[len(ss)/2]
	med.RSS = medianOf(ss, func(s Sample) int64 { return s.RSS })
	med.FDs = int(medianOf(ss, func(s Sample) int64 { return int64(s.FDs) }))
	med.Goroutines = int(medianOf(ss, func(s Sample) int64 { return int64(s.Goroutines) }))
	med.Clients = int(medianOf(ss, func(s Sample) int64 { return int64(s.Clients) }))
	return med, nil
}

func medianOf(ss []Sample, f func(Sample) int64) int64 {
	v := make([]int64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// within reports whether final is at most leakSlack above base.
func within(final, base int64) bool { return float64(final) <= float64(base)*(1+leakSlack) }

// settled reports whether every resource of final is within leakSlack of base, and no
// client is connected.
func settled(final, base Sample) bool {
	return final.Clients == 0 && within(final.RSS, base.RSS) && within(int64(final.FDs), int64(base.FDs)) &&
		within(int64(final.Goroutines), int64(base.Goroutines))
}

// goroutine is one goroutine of a dump (debug=2).
type goroutine struct {
	state     string
	frames    []string // function names, innermost first
	createdBy string
}

// parseGoroutines reads a goroutine dump in the debug=2 format (as a panic prints it).
func parseGoroutines(dump string) []goroutine {
	var gs []goroutine
	for block := range strings.SplitSeq(strings.TrimSpace(dump), "\n\n") {
		lines := strings.Split(block, "\n")
		head, ok := strings.CutPrefix(lines[0], "goroutine ")
		if !ok {
			continue
		}
		g := goroutine{}
		if i, j := strings.IndexByte(head, '['), strings.IndexByte(head, ']'); i >= 0 && j > i {
			g.state = strings.SplitN(head[i+1:j], ",", 2)[0]
		}
		for _, l := range lines[1:] {
			switch {
			case strings.HasPrefix(l, "\t"):
			case strings.HasPrefix(l, "created by "):
				g.createdBy = strings.Fields(strings.TrimPrefix(l, "created by "))[0]
			default:
				if i := strings.LastIndexByte(l, '('); i > 0 {
					l = l[:i]
				}
				g.frames = append(g.frames, l)
			}
		}
		gs = append(gs, g)
	}
	return gs
}

const module = "github.com/pyro-dispatch/pyro-dispatch/"

// signature names what a goroutine does: its innermost function of this module (else
// its innermost function), and who created it.
func (g goroutine) signature() string {
	top := ""
	for _, f := range g.frames {
		if strings.HasPrefix(f, module) {
			top = f
			break
		}
	}
	if top == "" && len(g.frames) > 0 {
		top = g.frames[0]
	}
	sig := strings.TrimPrefix(top, module)
	if g.createdBy != "" {
		sig += " ← " + strings.TrimPrefix(g.createdBy, module)
	}
	return sig
}

// has reports whether fn is one of g's frames.
func (g goroutine) has(fn string) bool {
	return slices.ContainsFunc(g.frames, func(f string) bool { return strings.HasSuffix(f, fn) })
}

// Goroutines of the dispatcher that belong to one connection or one pool.
const (
	sessionFunc   = "dispatch.(*Session).run"      // one per client connection
	muxReaderFunc = "dispatch.(*muxConn).readLoop" // one per pipelined upstream connection
	upkeepFunc    = "pool.(*Pool).upkeep"          // one per pool (a pooled handshake on a member)
)

// dumpSummary counts a dump's goroutines.
type dumpSummary struct {
	Total      int
	Sessions   int            // goroutines serving a client connection
	MuxReaders int            // readers of pipelined upstream connections
	Upkeeps    int            // pools' upkeep goroutines
	BySig      map[string]int // by signature
}

func summarize(gs []goroutine) dumpSummary {
	d := dumpSummary{Total: len(gs), BySig: map[string]int{}}
	for _, g := range gs {
		if strings.HasPrefix(g.createdBy, "net/http.") {
			continue // the admin listener serving this very dump (the soak keeps no connection open)
		}
		d.BySig[g.signature()]++
		if g.has(sessionFunc) {
			d.Sessions++
		}
		if g.has(muxReaderFunc) {
			d.MuxReaders++
		}
		if g.has(upkeepFunc) {
			d.Upkeeps++
		}
	}
	return d
}

// sigDelta is a signature with more goroutines at the end than at the baseline.
type sigDelta struct {
	Sig         string
	Base, Final int
}

// snapshot is the idle dispatcher at one moment: its resources (each the median of three
// samples a second apart), its goroutines and its pools.
type snapshot struct {
	Sample
	Dump dumpSummary
	// Pools counts the pools (a pooled handshake on a member, each with one upkeep
	// goroutine), PipelinedConns the pipelined listeners' upstream connections (each with
	// one reader), as /api/v1/pools has them.
	Pools, PipelinedConns int
}

// LeakCheck is the leak check's evidence and verdict.
type LeakCheck struct {
	Base, Final snapshot      // after the warm-up, and after the load
	Settle      time.Duration // from the end of the load to Final
	Grown       []sigDelta
	Problems    []string
}

// judge fills Grown and Problems.
func (c *LeakCheck) judge() {
	c.Grown, c.Problems = nil, nil
	for sig, n := range c.Final.Dump.BySig {
		if b := c.Base.Dump.BySig[sig]; n > b {
			c.Grown = append(c.Grown, sigDelta{sig, b, n})
		}
	}
	slices.SortFunc(c.Grown, func(a, b sigDelta) int { return strings.Compare(a.Sig, b.Sig) })
	pct := func(f, b int64) string { return fmt.Sprintf("%+.1f%%", 100*(float64(f)/float64(max(b, 1))-1)) }
	for _, r := range []struct {
		name        string
		base, final int64
	}{
		{"RSS", c.Base.RSS, c.Final.RSS},
		{"file descriptors", int64(c.Base.FDs), int64(c.Final.FDs)},
		{"goroutines", int64(c.Base.Goroutines), int64(c.Final.Goroutines)},
	} {
		if !within(r.final, r.base) {
			c.Problems = append(c.Problems, fmt.Sprintf("%s %d at the end, %s over the baseline %d", r.name, r.final, pct(r.final, r.base), r.base))
		}
	}
	if c.Final.Clients > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d client connections counted with every client gone", c.Final.Clients))
	}
	if d := c.Final.Dump; d.Sessions > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d goroutines in %s with no client connected", d.Sessions, sessionFunc))
	}
	if d := c.Final.Dump; d.MuxReaders > c.Final.PipelinedConns {
		c.Problems = append(c.Problems, fmt.Sprintf("%d goroutines in %s for %d pipelined upstream connections", d.MuxReaders, muxReaderFunc, c.Final.PipelinedConns))
	}
	if d := c.Final.Dump; d.Upkeeps > c.Final.Pools {
		c.Problems = append(c.Problems, fmt.Sprintf("%d goroutines in %s for %d pools", d.Upkeeps, upkeepFunc, c.Final.Pools))
	}
}

// snapshot takes the idle dispatcher's snapshot, and keeps its goroutine dump
// (/debug/pprof/goroutine) and its pools (/api/v1/pools) in the work directory as
// goroutines-NAME.txt and pools-NAME.json.
func (s *soak) snapshot(ctx context.Context, name string) (snapshot, error) {
	var sn snapshot
	var err error
	if sn.Sample, err = s.steady(ctx, 3); err != nil {
		return sn, err
	}
	dump, err := s.adm.get(ctx, "/debug/pprof/goroutine?debug=2")
	if err != nil {
		return sn, err
	}
	pools, err := s.adm.get(ctx, "/api/v1/pools")
	if err != nil {
		return sn, err
	}
	os.WriteFile(filepath.Join(s.opt.work, "goroutines-"+name+".txt"), dump, 0o600)
	os.WriteFile(filepath.Join(s.opt.work, "pools-"+name+".json"), pools, 0o600)
	sn.Dump = summarize(parseGoroutines(string(dump)))
	var ps []dispatch.PoolInfo
	if err := json.Unmarshal(pools, &ps); err != nil {
		return sn, err
	}
	for _, p := range ps {
		sn.Pools += p.Handshakes
		if modeOf(p.Listener) == "pipelined" {
			sn.PipelinedConns += p.Open
		}
	}
	return sn, nil
}
