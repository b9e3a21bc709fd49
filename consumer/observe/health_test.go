package observe

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// What /readyz answers in each state of a consumer.
func TestReadinessStates(t *testing.T) {
	for _, c := range []struct {
		name    string
		started bool
		failing map[string]error
		ready   bool
		says    []string
	}{
		{"starting", false, nil, false, []string{"starting: not yet consuming"}},
		{"starting, a dependency failing meanwhile is named", false, map[string]error{"postgres": errors.New("lookup db: no such host")}, false,
			[]string{"starting: not yet consuming", "postgres unavailable: lookup db: no such host"}},
		{"consuming", true, nil, true, []string{"ok"}},
		{"a dependency down", true, map[string]error{"kafka": errors.New("no broker answers")}, false, []string{"kafka unavailable: no broker answers"}},
		{"several, in name order", true, map[string]error{"topic t": errors.New("it does not exist"), "elasticsearch": errors.New("429")}, false,
			[]string{"elasticsearch unavailable: 429\ntopic t unavailable: it does not exist"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewReadiness()
			if c.started {
				r.MarkStarted()
			}
			for dep, err := range c.failing {
				r.Set(dep, err)
			}
			ready, why := r.Ready()
			if ready != c.ready {
				t.Fatalf("ready = %v (%q), want %v", ready, why, c.ready)
			}
			for _, s := range c.says {
				if !strings.Contains(why, s) {
					t.Errorf("%q does not say %q", why, s)
				}
			}
		})
	}
	r := NewReadiness()
	r.MarkStarted()
	r.Set("postgres", errors.New("down"))
	r.Set("postgres", nil)
	if ok, why := r.Ready(); !ok {
		t.Fatalf("a dependency that answered again still reported: %s", why)
	}
}

// OnRetry reports a retry on every channel at once.
func TestOnRetry(t *testing.T) {
	m, r := NewMetrics("audit"), NewReadiness()
	r.MarkStarted()
	hook := OnRetry(slog.New(slog.NewTextHandler(io.Discard, nil)), m, r, "postgres")
	hook(0, errors.New("connection refused"), 100*time.Millisecond)
	hook(1, errors.New("connection refused"), 200*time.Millisecond)
	var counted dto.Metric
	if err := m.Retries.WithLabelValues("postgres").Write(&counted); err != nil {
		t.Fatal(err)
	}
	if n := counted.GetCounter().GetValue(); n != 2 {
		t.Fatalf("retries_total{dependency=postgres} = %v, want 2", n)
	}
	if ok, why := r.Ready(); ok || !strings.Contains(why, "postgres unavailable: connection refused") {
		t.Fatalf("readiness %v %q", ok, why)
	}
}
