package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// procCPU is the CPU time, user plus system, that process pid and all its
// threads have used, in clock ticks (clockTicks per second).
func procCPU(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat returns utime + stime, fields 14 and 15 of a /proc/<pid>/stat
// line (proc(5)). The second field, the command name in parentheses, may
// itself hold spaces and parentheses, so the fields are counted from the
// last ')'.
func parseStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[14-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[15-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat stime: %w", err)
	}
	return utime + stime, nil
}

// memory is a process's resident set size now and at its peak, in KiB.
type memory struct {
	RSS, PeakRSS uint64
}

func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS and VmHWM (the peak RSS) from /proc/<pid>/status,
// lines such as "VmRSS:\t   12345 kB".
func parseStatus(b []byte) (memory, error) {
	var m memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("/proc status: %s: %q", name, rest)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc status: %s: %w", name, err)
		}
		if name == "VmRSS" {
			m.RSS = v
		} else {
			m.PeakRSS = v
		}
		seen++
	}
	if seen < 2 {
		return memory{}, errors.New("/proc status: no VmRSS and VmHWM")
	}
	return m, nil
}

// clockTicks is the unit of /proc's CPU times per second: sysconf's
// _SC_CLK_TCK, which Go reads only with cgo, so getconf is asked; 100 (the
// kernel's USER_HZ on all common architectures) if it cannot answer.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

// cpuWindow measures pid's CPU time (user and system, in clock ticks of
// ticks a second) over wait, which waits out the window.
func cpuWindow(pid int, ticks float64, wait func() error) (window, error) {
	c0, err := procCPU(pid)
	if err != nil {
		return window{}, err
	}
	t0 := time.Now()
	if err := wait(); err != nil {
		return window{}, err
	}
	c1, err := procCPU(pid)
	if err != nil {
		return window{}, err
	}
	return window{Seconds: time.Since(t0).Seconds(), CPUSeconds: float64(c1-c0) / ticks}, nil
}
