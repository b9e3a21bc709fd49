package cli

import (
	"strings"
	"testing"
)

// Bad values of the consumers' flags are refused with a message naming the value, before
// anything is reached for, never replaced by a default.
func TestConsumeRefusesBadFlagValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "audit", "--session-timeout", "-5s"}, "session timeout -5s: must be positive"},
		{[]string{"consume", "audit", "--session-timeout", "0s"}, "session timeout 0s: must be positive"},
		{[]string{"consume", "audit", "--shutdown-timeout", "-1s"}, "shutdown timeout -1s: must be positive"},
		{[]string{"consume", "audit", "--max-event-bytes", "5000000000"}, "max event bytes 5000000000: above 1073217535"},
		{[]string{"consume", "audit", "--max-event-bytes", "0"}, "max event bytes 0: must be positive"},
		{[]string{"consume", "audit", "--batch-wait", "-1ms"}, "batch wait -1ms: must not be negative"},
		{[]string{"consume", "indexer", "--bulk-timeout", "-2s"}, "--bulk-timeout -2s: must be positive"},
		{[]string{"consume", "indexer", "--max-read-age", "0s"}, "--max-read-age 0s: must be positive"},
		{[]string{"consume", "indexer", "--item-missing-timeout", "-1s"}, "--item-missing-timeout -1s: must be positive"},
		{[]string{"consume", "indexer", "--processed-retention", "-1h"}, "--processed-retention must not be negative"},
	} {
		out, err := runAtlas(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("atlas %s: error %v, want one saying %q\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

// The consumers collect garbage at GOGC=50 unless the environment sets GOGC (which the Go
// runtime then applies itself).
func TestConsumerGCPercent(t *testing.T) {
	for _, c := range []struct {
		gogc    string
		percent int
		set     bool
	}{
		{"", 50, true},
		{"100", 0, false},
		{"off", 0, false},
	} {
		if p, set := consumerGCPercent(c.gogc); p != c.percent || set != c.set {
			t.Errorf("GOGC=%q: got %d, %t; want %d, %t", c.gogc, p, set, c.percent, c.set)
		}
	}
}
