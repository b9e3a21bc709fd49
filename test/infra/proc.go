package infra

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// ProcessCPU reads the CPU time (user + system, in seconds) a process has used so far.
func ProcessCPU(t testing.TB, pid int) float64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read the CPU use of process %d: %v", pid, err)
	}
	// the fields after the command name, which is in parentheses and may hold spaces
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	// /proc's unit is USER_HZ: 100 on Linux for every architecture Go supports
	return (utime + stime) / 100
}

// ProcessMemory reads a process's resident and peak resident memory (VmRSS, VmHWM) in bytes.
func ProcessMemory(t testing.TB, pid int) (rss, peak int64) {
	t.Helper()
	rss, peak, err := ReadProcessMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss, peak
}

// ReadProcessMemory reads a process's VmRSS and VmHWM in bytes; an error once it is gone.
func ReadProcessMemory(pid int) (rss, peak int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read the memory use of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return rss, peak, nil
}
