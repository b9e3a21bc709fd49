package observe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The known reasons and dependencies have series at zero before anything happened, so an
// alert on increase() sees the first dead letter.
func TestKnownCreatesZeroSeries(t *testing.T) {
	m := NewMetrics("audit")
	if n := testutil.CollectAndCount(m.DeadLettered); n != 0 {
		t.Fatalf("%d dead-letter series before Known, want 0", n)
	}
	m.Known([]string{"not-json", "unstorable"}, []string{"kafka", "postgres"})
	if n := testutil.CollectAndCount(m.DeadLettered); n != 2 {
		t.Fatalf("%d dead-letter series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.Retries); n != 2 {
		t.Fatalf("%d retry series, want 2", n)
	}
	if v := testutil.ToFloat64(m.DeadLettered.WithLabelValues("not-json")); v != 0 {
		t.Fatalf("not-json = %v, want 0", v)
	}
}
