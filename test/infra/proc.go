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

// FindProcess returns the pid of the one running process whose command line holds every
// one of parts (a server the test started through a library that does not give its pid).
func FindProcess(t testing.TB, parts ...string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var found []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone since the listing
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		if allIn(cmdline, parts) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one process whose command line holds %q, found %d: %v", parts, len(found), found)
	}
	return found[0]
}

func allIn(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// MachineCPU reads the seconds all of the machine's CPUs have spent busy and in total
// since boot (from /proc/stat): the difference of two readings says how busy it was.
func MachineCPU(t testing.TB) (busy, total float64) {
	t.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("read the machine's CPU use: %v", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		t.Fatalf("unexpected first line of /proc/stat: %q", line)
	}
	var idle float64
	for i, v := range f[1:9] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return (total - idle) / 100, total / 100
}
