// Package indexer is the indexer consumer's sink: for item events it reads the items'
// current state from Postgres (the truth) and writes it to the search index, newest
// version winning, each event applied once.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
)

// KindIndexRejected is the dead-letter kind of item events whose document the search
// server refuses for good (a mapping error, say).
const KindIndexRejected = "index-rejected"

// Dependencies named in readiness and retry metrics.
const (
	DependencyPostgres = "postgres"
	DependencySearch   = "elasticsearch"
)

// Handles reports whether the indexer acts on events of this type.
func Handles(t event.Type) bool {
	return t == event.ItemCreated || t == event.ItemUpdated || t == event.ItemDeleted
}

// SkipRecord is the runner's pre-decoding filter: a record whose event_type header names
// a type the indexer does not handle is passed over without parsing its JSON.
func SkipRecord(rec *kgo.Record) bool {
	for _, h := range rec.Headers {
		if h.Key == event.HeaderEventType {
			return !Handles(event.Type(h.Value))
		}
	}
	return false
}

// Config configures the sink.
type Config struct {
	// Alias is the index alias documents are written to.
	Alias string
	// Retention is how long applied event ids are remembered for deduplication.
	Retention time.Duration
	// BulkConcurrency is how many bulk requests one batch is split into (the search
	// server indexes concurrent requests on separate threads).
	BulkConcurrency int
	Backoff         backoff.Policy
}

// Sink applies item events to the search index.
type Sink struct {
	cfg       Config
	store     store
	es        *elasticsearch.Client
	log       *slog.Logger
	skipped   prometheus.Counter
	lastPrune time.Time

	indexed, deleted, conflicts, duplicates, reads, retries prometheus.Counter
	bulkSeconds                                             prometheus.Histogram
}

// NewSink returns the sink and registers its metrics.
func NewSink(cfg Config, pool *pgxpool.Pool, es *elasticsearch.Client, log *slog.Logger, m *observe.Metrics) *Sink {
	labels := prometheus.Labels{"consumer": "indexer"}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
		m.Registry.MustRegister(c)
		return c
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Default
	}
	s := &Sink{cfg: cfg, store: store{pool: pool}, es: es, log: log, skipped: m.Skipped, lastPrune: time.Now(),
		indexed:    counter("atlas_consumer_documents_indexed_total", "Item documents written to the search index."),
		deleted:    counter("atlas_consumer_documents_deleted_total", "Item documents deleted from the search index (hard or soft deletes)."),
		conflicts:  counter("atlas_consumer_version_conflicts_total", "Index operations refused because a newer version of the item is already indexed (counted as done)."),
		duplicates: counter("atlas_consumer_events_duplicate_total", "Item events already applied (found in indexer_processed_events or repeated in a batch)."),
		reads:      counter("atlas_consumer_item_queries_total", "Queries reading items from Postgres (one per batch)."),
		retries:    counter("atlas_consumer_bulk_item_retries_total", "Bulk operations retried after a 429 or 5xx."),
		bulkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "atlas_consumer_bulk_duration_seconds", ConstLabels: labels,
			Help: "Duration of bulk requests to the search server.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 12),
		}),
	}
	m.Registry.MustRegister(s.bulkSeconds)
	return s
}

// Name implements runner.Sink.
func (s *Sink) Name() string { return DependencySearch }

// Apply implements runner.Sink: drop what is not an item event or was already applied,
// read every touched item once, write each item's current state once, and only then
// record the events as applied.
func (s *Sink) Apply(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	t0 := time.Now()
	fresh, err := s.freshItemEvents(ctx, msgs)
	if err != nil || len(fresh) == 0 {
		return nil, err
	}
	byItem := map[uuid.UUID][]runner.Message{}
	var ids []uuid.UUID
	for _, m := range fresh {
		id := m.Event.Entity.ID
		if _, seen := byItem[id]; !seen {
			ids = append(ids, id)
		}
		byItem[id] = append(byItem[id], m)
	}
	t1 := time.Now()
	s.reads.Inc()
	items, err := s.store.items(ctx, ids)
	if err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	ops := make([]op, len(ids))
	for i, id := range ids {
		ops[i] = opFor(id, items[id])
	}
	t2 := time.Now()
	failed, err := s.write(ctx, ops)
	if err != nil {
		return nil, err
	}
	t3 := time.Now()
	var rejections []runner.Rejection
	for id, reason := range failed {
		for _, m := range byItem[id] {
			rejections = append(rejections, runner.Rejection{Record: m.Record, Event: m.Event, Kind: KindIndexRejected,
				Reason: "the search server refused item " + id.String() + ": " + reason})
		}
	}
	done := make([]uuid.UUID, 0, len(fresh))
	for _, m := range fresh {
		if _, bad := failed[m.Event.Entity.ID]; !bad {
			done = append(done, m.Event.EventID)
		}
	}
	if err := s.store.markProcessed(ctx, done); err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("indexer batch", "events", len(msgs), "fresh", len(fresh), "items", len(ids),
			"dedupe", t1.Sub(t0).String(), "read", t2.Sub(t1).String(), "bulk", t3.Sub(t2).String(), "record", time.Since(t3).String())
		for _, m := range fresh {
			s.log.Debug("indexed", "event_id", m.Event.EventID, "trace_id", m.Event.Trace(), "event_type", m.Event.EventType, "item_id", m.Event.Entity.ID)
		}
	}
	s.maybePrune(ctx)
	return rejections, nil
}

// freshItemEvents keeps the item events of the batch that were not applied before.
func (s *Sink) freshItemEvents(ctx context.Context, msgs []runner.Message) ([]runner.Message, error) {
	var items []runner.Message
	var ids []uuid.UUID
	inBatch := map[uuid.UUID]bool{}
	for _, m := range msgs {
		if !Handles(m.Event.EventType) || m.Event.Version > event.CurrentVersion {
			s.skipped.Inc()
			continue
		}
		if inBatch[m.Event.EventID] {
			s.duplicates.Inc()
			continue
		}
		inBatch[m.Event.EventID] = true
		items = append(items, m)
		ids = append(ids, m.Event.EventID)
	}
	if len(items) == 0 {
		return nil, nil
	}
	done, err := s.store.processed(ctx, ids)
	if err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	fresh := items[:0]
	for _, m := range items {
		if done[m.Event.EventID] {
			s.duplicates.Inc()
			continue
		}
		fresh = append(fresh, m)
	}
	return fresh, nil
}

// write sends the operations, retrying the ones the server could not take yet (429,
// 5xx) with backoff, and returns the items it refused for good with the reason.
func (s *Sink) write(ctx context.Context, ops []op) (map[uuid.UUID]string, error) {
	failed := map[uuid.UUID]string{}
	pending := ops
	for attempt := 0; len(pending) > 0; attempt++ {
		results, err := s.bulkParallel(ctx, pending)
		if err != nil {
			return nil, &runner.DependencyError{Dependency: DependencySearch, Err: err}
		}
		var again []op
		var lastReason string
		for i, r := range results {
			o := pending[i]
			switch r.outcome {
			case applied:
				if o.delete {
					s.deleted.Inc()
				} else {
					s.indexed.Inc()
				}
			case conflict:
				s.conflicts.Inc()
			case retry:
				again = append(again, o)
				lastReason = r.reason
			case rejected:
				failed[o.id] = r.reason
			}
		}
		pending = again
		if len(pending) == 0 {
			break
		}
		s.retries.Add(float64(len(pending)))
		wait := s.cfg.Backoff.Wait(attempt)
		s.log.Warn("search server deferred bulk operations; retrying them", "operations", len(pending), "reason", lastReason, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%d bulk operations still deferred: %w", len(pending), errors.Join(ctx.Err(), errors.New(lastReason)))
		}
	}
	return failed, nil
}

// bulkParallel sends the operations as up to cfg.BulkConcurrency concurrent bulk
// requests (each item's operation is in exactly one of them, so order between requests
// does not matter) and returns the results in the order of ops.
func (s *Sink) bulkParallel(ctx context.Context, ops []op) ([]result, error) {
	parts := s.cfg.BulkConcurrency
	if parts < 1 {
		parts = 1
	}
	if minPart := 250; len(ops)/parts < minPart {
		parts = max(1, len(ops)/minPart)
	}
	size := (len(ops) + parts - 1) / parts
	results := make([]result, len(ops))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		lo, hi := p*size, min((p+1)*size, len(ops))
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res, err := bulk(ctx, s.es, s.cfg.Alias, ops[lo:hi])
			s.bulkSeconds.Observe(time.Since(start).Seconds())
			if err != nil {
				errs[p] = err
				return
			}
			copy(results[lo:hi], res)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// maybePrune forgets old applied event ids, at most once a minute.
func (s *Sink) maybePrune(ctx context.Context) {
	if time.Since(s.lastPrune) < time.Minute || s.cfg.Retention <= 0 {
		return
	}
	s.lastPrune = time.Now()
	n, err := s.store.prune(ctx, s.cfg.Retention)
	if err != nil {
		s.log.Warn("pruning processed events failed; will try again", "error", err)
		return
	}
	if n > 0 {
		s.log.Info("pruned processed events", "count", n, "older_than", s.cfg.Retention.String())
	}
}
