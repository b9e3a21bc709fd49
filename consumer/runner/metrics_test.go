package runner

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The runner's registry carries franz-go's client metrics (kprom, atlas_consumer_kafka_*,
// labelled with the consumer) once the client talked to the broker, and the series of every
// dead-letter reason and retried dependency at zero from the start.
func TestTheRunnerPublishesKafkaClientMetricsAndKnownSeries(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	run := startRunner(t, testConfig(k), &testSink{name: "postgres"})
	for _, want := range []struct {
		name string
		n    int
	}{
		{"atlas_consumer_dead_lettered_total", 3}, // not-json, invalid-envelope, too-large
		{"atlas_consumer_retries_total", 3},       // kafka, dead-letter, postgres
	} {
		if n, err := testutil.GatherAndCount(run.metrics.Registry, want.name); err != nil || n != want.n {
			t.Errorf("%s: %d series (%v), want %d", want.name, n, err, want.n)
		}
	}
	k.produce(t, validRecords(t, 3, 1)...)
	eventually(t, 5*time.Second, "no franz-go client metrics", func() bool {
		n, err := testutil.GatherAndCount(run.metrics.Registry, "atlas_consumer_kafka_connects_total", "atlas_consumer_kafka_fetch_records_total")
		return err == nil && n >= 2
	})
	families, err := run.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "atlas_consumer_kafka_connects_total" {
			continue
		}
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() == "consumer" && l.GetValue() == "audit" {
				return
			}
		}
		t.Fatalf("atlas_consumer_kafka_connects_total has no consumer label: %v", f.GetMetric()[0].GetLabel())
	}
	t.Fatal("no atlas_consumer_kafka_connects_total")
}
