package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux
// architecture Go supports.
const userHZ = 100

// ProcessCPU returns the CPU time, user plus system, that the processes pids and all
// their descendants have used so far, read from /proc/PID/stat (Linux only; precise to
// 1/USER_HZ = 10ms per process). Descendants are found by scanning /proc for parent PIDs,
// so the worker processes of a master (nginx) count without being named. A process that
// has gone is skipped; an error is returned only when none of pids can be read.
func ProcessCPU(pids []int) (time.Duration, error) {
	if len(pids) == 0 {
		return 0, errors.New("no process to sample")
	}
	procs, err := readProcs()
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	seen := map[int]bool{}
	var ticks int64
	found := false
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		if p, ok := procs[pid]; ok {
			ticks += p.ticks
			for _, c := range children[pid] {
				walk(c)
			}
		}
	}
	for _, pid := range pids {
		if _, ok := procs[pid]; ok {
			found = true
		}
		walk(pid)
	}
	if !found {
		return 0, fmt.Errorf("no process %v in /proc", pids)
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

type procStat struct {
	ppid  int
	ticks int64 // utime + stime
}

// readProcs reads the parent and CPU ticks of every process in /proc.
func readProcs() (map[int]procStat, error) {
	names, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no /proc/PID/stat: CPU sampling needs Linux /proc")
	}
	out := make(map[int]procStat, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // gone meanwhile
		}
		pid, st, ok := parseProcStat(b)
		if ok {
			out[pid] = st
		}
	}
	return out, nil
}

// parseProcStat parses a /proc/PID/stat line: "pid (comm) state ppid ... utime stime ...",
// comm possibly holding spaces and parentheses.
func parseProcStat(b []byte) (int, procStat, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return 0, procStat{}, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return 0, procStat{}, false
	}
	// Fields after comm: state(3) ppid(4) pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime(14) stime(15).
	f := bytes.Fields(b[end+1:])
	if len(f) < 13 {
		return 0, procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	ut, err2 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err3 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, procStat{}, false
	}
	return pid, procStat{ppid: ppid, ticks: ut + st}, true
}
