package runner

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// In a burst the consumer reports the lag of every partition it owns, not only of those a
// poll returned: with the sink holding the first batch, the other partition's records are
// counted too, and the gauges sum to everything not committed.
func TestPartitionLagCountsEveryOwnedPartition(t *testing.T) {
	old := lagInterval
	lagInterval = 50 * time.Millisecond
	t.Cleanup(func() { lagInterval = old })
	k := newKafka(t, 2, testTopic, testDLQ)
	release := make(chan struct{})
	sink := &testSink{name: "postgres", apply: func(ctx context.Context, _ []Message) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}
	cfg := testConfig(k)
	run := startRunner(t, cfg, sink)
	k.produce(t, validRecords(t, 40, 2)...) // 20 records on each partition
	sum := func() float64 {
		return testutil.ToFloat64(run.metrics.Lag.WithLabelValues(testTopic, "0")) + testutil.ToFloat64(run.metrics.Lag.WithLabelValues(testTopic, "1"))
	}
	eventually(t, 5*time.Second, "the lag of both partitions is not reported", func() bool { return sum() == 40 })
	close(release)
	eventually(t, 5*time.Second, "the lag does not go back to zero once everything is committed", func() bool { return sum() == 0 })
}
