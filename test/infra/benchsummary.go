package infra

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// EnvBenchSummary names the file the benchmarks append their summary rows to; `make bench`
// (hack/test.sh --bench) sets it and prints the rows as one table at the end.
const EnvBenchSummary = "ATLAS_BENCH_SUMMARY"

// BenchRow is one line of the benchmark summary: a figure of ours, against a reference or
// a peer when there is one, and the goal it is held to.
type BenchRow struct {
	Work      string  // what was measured, e.g. "audit, 1M events: events/s"
	Ours      float64 // our figure
	Other     float64 // the reference's or peer's figure (0: none)
	OtherName string  // e.g. "COPY", "Connect tasks.max=2"
	Unit      string
	Goal      string // e.g. "ratio >= 2", "< 1 s"; "-" when the row only informs
	Met       bool
}

// Ratio is Ours/Other (0 without Other).
func (r BenchRow) Ratio() float64 {
	if r.Other == 0 {
		return 0
	}
	return r.Ours / r.Other
}

// ReportBench prints the rows and appends them to the summary file when there is one. A
// benchmark never fails on a figure: the summary says what is met.
func ReportBench(b testing.TB, rows ...BenchRow) {
	b.Helper()
	var lines []string
	for _, r := range rows {
		other, ratio := "-", "-"
		if r.Other != 0 {
			other = fmt.Sprintf("%.4g %s (%s)", r.Other, r.Unit, r.OtherName)
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		goal, met := r.Goal, "met"
		if goal == "" {
			goal = "-"
		}
		switch {
		case goal == "-":
			met = "-"
		case !r.Met:
			met = "NOT MET"
		}
		lines = append(lines, strings.Join([]string{r.Work, fmt.Sprintf("%.4g %s", r.Ours, r.Unit), other, ratio, goal, met}, "\t"))
	}
	for _, l := range lines {
		b.Log(strings.ReplaceAll(l, "\t", " | "))
	}
	path := os.Getenv(EnvBenchSummary)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatalf("open the benchmark summary %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		b.Fatal(err)
	}
}
