package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// screen shows snapshots: redrawn in place on a terminal; elsewhere (a log, a pipe) one
// line whenever the figures change, and each new operator Event once.
type screen struct {
	out      io.Writer
	terminal bool
	last     string
	seen     map[string]bool
}

func newScreen(f *os.File) *screen {
	return &screen{out: f, terminal: term.IsTerminal(int(f.Fd())), seen: map[string]bool{}}
}

func (s *screen) draw(snap *snapshot, traffic string) {
	if s.terminal {
		fmt.Fprint(s.out, "\x1b[H\x1b[2J"+page(snap, traffic))
		return
	}
	for i := len(snap.events) - 1; i >= 0; i-- {
		e := snap.events[i]
		key := e.at.String() + e.object + e.reason + e.note
		if !s.seen[key] {
			s.seen[key] = true
			fmt.Fprintf(s.out, "%s  event  %s %s: %s\n", e.at.Local().Format("15:04:05"), e.object, e.reason, e.note)
		}
	}
	line := compact(snap)
	if line != s.last {
		s.last = line
		fmt.Fprintf(s.out, "%s  %s\n", snap.at.Format("15:04:05"), line)
	}
}

// page is the terminal view.
func page(snap *snapshot, traffic string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Atlas consumers, live (%s)   Ctrl-C stops the demo and prints the summary\n\n", snap.at.Format("15:04:05"))
	fmt.Fprintf(&b, "  traffic            %s\n", traffic)
	fmt.Fprintf(&b, "  events produced    %10s\n", thousands(snap.produced))
	fmt.Fprintf(&b, "  audit rows         %10s\n", thousands(snap.auditRows))
	fmt.Fprintf(&b, "  items (live)       %10s   in Postgres\n", thousands(snap.liveItems))
	fmt.Fprintf(&b, "  indexed documents  %10s   in Elasticsearch\n\n", thousands(snap.documents))
	fmt.Fprintf(&b, "  %-10s %-8s %8s %8s %6s %9s %9s\n", "CONSUMER", "MODE", "DESIRED", "READY", "PODS", "RESTARTS", "LAG")
	for _, c := range snap.consumers {
		fmt.Fprintf(&b, "  %-10s %-8s %8d %8d %6d %9d %9s\n", c.name, c.mode, c.desired, c.ready, c.pods, c.restarts, lagText(c.lag))
	}
	fmt.Fprintf(&b, "\n  recent operator events\n")
	for i, e := range snap.events {
		if i == 6 {
			break
		}
		fmt.Fprintf(&b, "  %s  %-8s %-12s %s\n", e.at.Local().Format("15:04:05"), e.object, e.reason, e.note)
	}
	if len(snap.events) == 0 {
		fmt.Fprintf(&b, "  (none yet)\n")
	}
	for _, p := range snap.problems {
		fmt.Fprintf(&b, "\n  cannot read %s", p)
	}
	b.WriteString("\n")
	return b.String()
}

// compact is the one-line view.
func compact(snap *snapshot) string {
	parts := []string{fmt.Sprintf("produced %s, audited %s, items %s, documents %s",
		thousands(snap.produced), thousands(snap.auditRows), thousands(snap.liveItems), thousands(snap.documents))}
	for _, c := range snap.consumers {
		parts = append(parts, fmt.Sprintf("%s desired %d ready %d lag %s", c.name, c.desired, c.ready, lagText(c.lag)))
	}
	if len(snap.problems) > 0 {
		parts = append(parts, "cannot read "+strings.Join(snap.problems, "; "))
	}
	return strings.Join(parts, " | ")
}

// summary prints the final counts and fails when they disagree.
func summary(out io.Writer, snap *snapshot, t *traffic) error {
	ok := func(b bool) string {
		if b {
			return "agree"
		}
		return "DISAGREE"
	}
	audited := snap.produced == snap.auditRows
	indexed := snap.liveItems == snap.documents
	fmt.Fprintf(out, "\nSummary (%s of up to %s events)\n", plural(t.bursts(), "burst"), thousands(int64(t.cfg.burstSize)))
	fmt.Fprintf(out, "  events produced %s, audit rows %s: %s\n", thousands(snap.produced), thousands(snap.auditRows), ok(audited))
	fmt.Fprintf(out, "  items in Postgres %s, documents in the index %s: %s\n", thousands(snap.liveItems), thousands(snap.documents), ok(indexed))
	for _, c := range snap.consumers {
		n := snap.scaled[c.name]
		fmt.Fprintf(out, "  %s: %d desired, %d ready, lag %s; scaled up %s, down %s\n",
			c.name, c.desired, c.ready, lagText(c.lag), times(n[0]), times(n[1]))
	}
	for _, p := range snap.problems {
		fmt.Fprintf(out, "  cannot read %s\n", p)
	}
	if !audited || !indexed || len(snap.problems) > 0 {
		return errors.New("the counts do not agree")
	}
	return nil
}

// plural: "1 burst", "2 bursts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func times(n int) string { return plural(n, "time") }

func lagText(lag int64) string {
	if lag < 0 {
		return "?"
	}
	return thousands(lag)
}

// thousands formats n with thousands separators: 12345 -> "12,345".
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
