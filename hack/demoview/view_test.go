package main

import (
	"strings"
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 20000: "20,000", 1234567: "1,234,567", -5: "-5"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCaughtUpAndSettled(t *testing.T) {
	base := func() *snapshot {
		return &snapshot{produced: 100, auditRows: 100, liveItems: 40, documents: 40, consumers: []consumerView{
			{name: "audit", desired: 2, ready: 2},
			{name: "indexer", desired: 1, ready: 1, minReplicas: 1},
		}}
	}
	if s := base(); !s.caughtUp() || !s.settled() {
		t.Fatalf("agreeing counts, no lag, indexer at its minimum: caughtUp %v, settled %v", s.caughtUp(), s.settled())
	}
	for name, change := range map[string]func(*snapshot){
		"an event not audited":      func(s *snapshot) { s.auditRows-- },
		"an item not indexed":       func(s *snapshot) { s.documents-- },
		"lag left":                  func(s *snapshot) { s.consumers[1].lag = 3 },
		"a source not readable":     func(s *snapshot) { s.problems = []string{"kafka: down"} },
		"more documents than items": func(s *snapshot) { s.documents++ },
	} {
		s := base()
		change(s)
		if s.caughtUp() || s.settled() {
			t.Errorf("%s: caughtUp %v, settled %v", name, s.caughtUp(), s.settled())
		}
	}
	s := base()
	s.consumers[1].desired, s.consumers[1].ready = 6, 6
	if !s.caughtUp() || s.settled() || s.maxDesired() != 6 {
		t.Errorf("indexer still at 6 pods: caughtUp %v (want true), settled %v (want false), maxDesired %d", s.caughtUp(), s.settled(), s.maxDesired())
	}
}

func TestSummaryFailsWhenCountsDisagree(t *testing.T) {
	tr := &traffic{cfg: config{burstSize: 20_000}, started: 2}
	agree := &snapshot{produced: 40_000, auditRows: 40_000, liveItems: 9_000, documents: 9_000, scaled: map[string][2]int{}}
	var out strings.Builder
	if err := summary(&out, agree, tr); err != nil {
		t.Fatalf("agreeing counts: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "events produced 40,000, audit rows 40,000: agree") {
		t.Errorf("summary:\n%s", out.String())
	}
	disagree := *agree
	disagree.documents = 8_999
	out.Reset()
	if err := summary(&out, &disagree, tr); err == nil || !strings.Contains(out.String(), "documents in the index 8,999: DISAGREE") {
		t.Errorf("one document missing: err %v, summary:\n%s", err, out.String())
	}
}

func TestCompactLineChangesOnlyWithTheFigures(t *testing.T) {
	var out strings.Builder
	sc := &screen{out: &out, seen: map[string]bool{}}
	snap := &snapshot{at: time.Now(), produced: 5, consumers: []consumerView{{name: "indexer", desired: 6, ready: 1, lag: 1200}}}
	sc.draw(snap, "")
	sc.draw(snap, "")
	if lines := strings.Count(out.String(), "\n"); lines != 1 {
		t.Fatalf("the same figures twice printed %d lines:\n%s", lines, out.String())
	}
	if !strings.Contains(out.String(), "indexer desired 6 ready 1 lag 1,200") {
		t.Errorf("line: %s", out.String())
	}
}
