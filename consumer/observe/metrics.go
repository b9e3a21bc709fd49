// Package observe gives a consumer its Prometheus metrics, its readiness state and the
// HTTP endpoint that serves /metrics, /healthz and /readyz.
package observe

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the series every consumer exports, labelled consumer="<mode>".
// Sinks register their own series (inserted, duplicates, indexed, ...) on Registry.
type Metrics struct {
	// Mode is the consumer's mode ("audit", "indexer"), the label "consumer" of every series.
	Mode     string
	Registry *prometheus.Registry

	Consumed       prometheus.Counter
	Skipped        prometheus.Counter
	DeadLettered   *prometheus.CounterVec // by reason kind
	Retries        *prometheus.CounterVec // by dependency
	CommitFailures prometheus.Counter
	Committed      prometheus.Counter
	BatchSize      prometheus.Histogram
	BatchDuration  prometheus.Histogram
	Lag            *prometheus.GaugeVec // by topic, partition
	TopicMissing   *prometheus.GaugeVec // by topic
}

// NewMetrics creates the registry and the common series of a consumer in the given mode.
func NewMetrics(mode string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := prometheus.Labels{"consumer": mode}
	m := &Metrics{
		Mode:     mode,
		Registry: reg,
		Consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_records_consumed_total", ConstLabels: labels,
			Help: "Kafka records taken from the topic (valid or not).",
		}),
		Skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_records_skipped_total", ConstLabels: labels,
			Help: "Records this consumer does not handle, passed over without decoding (their offsets advance).",
		}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_consumer_dead_lettered_total", ConstLabels: labels,
			Help: "Records written to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_consumer_retries_total", ConstLabels: labels,
			Help: "Retries after a failed call to a dependency (postgres, kafka, dead-letter, search).",
		}, []string{"dependency"}),
		CommitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_commit_failures_total", ConstLabels: labels,
			Help: "Offset commits that failed (each is retried or, after a rebalance, left to the new owner).",
		}),
		Committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_batches_committed_total", ConstLabels: labels,
			Help: "Batches whose offsets were committed after they were durably processed.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atlas_consumer_batch_size", ConstLabels: labels,
			Help:    "Records per processed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atlas_consumer_batch_duration_seconds", ConstLabels: labels,
			Help:    "Time to process a batch, from poll to commit, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_consumer_partition_lag", ConstLabels: labels,
			Help: "Records between the group's committed offset and the partition's end offset, for each partition this pod owns, measured every 5 s.",
		}, []string{"topic", "partition"}),
		TopicMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_consumer_topic_missing", ConstLabels: labels,
			Help: "1 while a topic the consumer needs (its topic or dead-letter topic) does not exist on the brokers.",
		}, []string{"topic"}),
	}
	reg.MustRegister(m.Consumed, m.Skipped, m.DeadLettered, m.Retries, m.CommitFailures, m.Committed, m.BatchSize, m.BatchDuration, m.Lag, m.TopicMissing)
	return m
}

// Known creates the series of the dead-letter reasons and retried dependencies a consumer
// can report, at zero, before the first one happens: a dashboard shows them from the
// start, and an alert on increase() sees the first dead letter (a series born at 1 has no
// earlier sample to increase from, so increase() would miss it).
func (m *Metrics) Known(reasons, dependencies []string) {
	for _, r := range reasons {
		m.DeadLettered.WithLabelValues(r)
	}
	for _, d := range dependencies {
		m.Retries.WithLabelValues(d)
	}
}
