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
	// lastApplied are the event ids the latest batch recorded, which a plan prepared
	// meanwhile could not see yet.
	lastApplied map[uuid.UUID]bool

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

// plan is a batch's read-only work: the item events not applied before, grouped by
// item, and the items' current state. Prepare makes it ahead of time, while the previous
// batch is still being written.
type plan struct {
	fresh  []runner.Message
	byItem map[uuid.UUID][]runner.Message
	ids    []uuid.UUID
	items  map[uuid.UUID]*Item
	// skipped counts the batch's other events, duplicates its repeated or already
	// applied ones; they are counted when the batch is applied.
	skipped, duplicates int
	// read is when the plan was made, dedupe and read its two queries' durations.
	dedupe, read time.Duration
}

// Prepare implements runner.Preparer: it makes the batch's plan while the previous batch
// is written. A failure is not an error: ApplyPrepared then makes the plan itself.
func (s *Sink) Prepare(ctx context.Context, msgs []runner.Message) any {
	p, err := s.plan(ctx, msgs)
	if err != nil {
		s.log.Debug("preparing a batch failed; it will be read when applied", "error", err)
		return nil
	}
	return p
}

// Apply implements runner.Sink.
func (s *Sink) Apply(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	return s.ApplyPrepared(ctx, msgs, nil)
}

// ApplyPrepared implements runner.Preparer: drop what is not an item event or was
// already applied, read every touched item once, write each item's current state once,
// and only then record the events as applied.
func (s *Sink) ApplyPrepared(ctx context.Context, msgs []runner.Message, prepared any) ([]runner.Rejection, error) {
	t0 := time.Now()
	p, ok := prepared.(*plan)
	if ok && p != nil {
		// The previous batch was applied while this plan was made: drop what it did.
		p.dropApplied(s.lastApplied)
	} else {
		var err error
		if p, err = s.plan(ctx, msgs); err != nil {
			return nil, err
		}
	}
	s.skipped.Add(float64(p.skipped))
	s.duplicates.Add(float64(p.duplicates))
	if len(p.fresh) == 0 {
		return nil, nil
	}
	ops := make([]op, len(p.ids))
	for i, id := range p.ids {
		ops[i] = opFor(id, p.items[id])
	}
	t1 := time.Now()
	failed, err := s.write(ctx, ops)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	var rejections []runner.Rejection
	for id, reason := range failed {
		for _, m := range p.byItem[id] {
			rejections = append(rejections, runner.Rejection{Record: m.Record, Event: m.Event, Kind: KindIndexRejected,
				Reason: "the search server refused item " + id.String() + ": " + reason})
		}
	}
	done := make([]uuid.UUID, 0, len(p.fresh))
	for _, m := range p.fresh {
		if _, bad := failed[m.Event.Entity.ID]; !bad {
			done = append(done, m.Event.EventID)
		}
	}
	if err := s.store.markProcessed(ctx, done); err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	s.lastApplied = make(map[uuid.UUID]bool, len(done))
	for _, id := range done {
		s.lastApplied[id] = true
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("indexer batch", "events", len(msgs), "fresh", len(p.fresh), "items", len(p.ids), "prepared", ok && prepared != nil,
			"dedupe", p.dedupe.String(), "read", p.read.String(), "plan", t1.Sub(t0).String(), "bulk", t2.Sub(t1).String(), "record", time.Since(t2).String())
		for _, m := range p.fresh {
			s.log.Debug("indexed", "event_id", m.Event.EventID, "trace_id", m.Event.Trace(), "event_type", m.Event.EventType, "item_id", m.Event.Entity.ID)
		}
	}
	s.maybePrune(ctx)
	return rejections, nil
}

// plan keeps the item events of the batch that were not applied before, and reads
// every item they touch, once.
func (s *Sink) plan(ctx context.Context, msgs []runner.Message) (*plan, error) {
	p := &plan{byItem: map[uuid.UUID][]runner.Message{}}
	var items []runner.Message
	var eventIDs []uuid.UUID
	inBatch := map[uuid.UUID]bool{}
	for _, m := range msgs {
		if !Handles(m.Event.EventType) || m.Event.Version > event.CurrentVersion {
			p.skipped++
			continue
		}
		if inBatch[m.Event.EventID] {
			p.duplicates++
			continue
		}
		inBatch[m.Event.EventID] = true
		items = append(items, m)
		eventIDs = append(eventIDs, m.Event.EventID)
	}
	if len(items) == 0 {
		return p, nil
	}
	t0 := time.Now()
	done, err := s.store.processed(ctx, eventIDs)
	if err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	for _, m := range items {
		if done[m.Event.EventID] {
			p.duplicates++
			continue
		}
		p.fresh = append(p.fresh, m)
		id := m.Event.Entity.ID
		if _, seen := p.byItem[id]; !seen {
			p.ids = append(p.ids, id)
		}
		p.byItem[id] = append(p.byItem[id], m)
	}
	t1 := time.Now()
	p.dedupe = t1.Sub(t0)
	if len(p.ids) > 0 {
		s.reads.Inc()
		if p.items, err = s.store.items(ctx, p.ids); err != nil {
			return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
		}
	}
	p.read = time.Since(t1)
	return p, nil
}

// dropApplied removes the events recorded as applied since the plan was made, and the
// items no event is left for.
func (p *plan) dropApplied(applied map[uuid.UUID]bool) {
	if len(applied) == 0 {
		return
	}
	fresh := p.fresh[:0]
	for _, m := range p.fresh {
		if applied[m.Event.EventID] {
			p.duplicates++
			continue
		}
		fresh = append(fresh, m)
	}
	p.fresh = fresh
	byItem := map[uuid.UUID][]runner.Message{}
	for _, m := range fresh {
		byItem[m.Event.Entity.ID] = append(byItem[m.Event.Entity.ID], m)
	}
	ids := p.ids[:0]
	for _, id := range p.ids {
		if len(byItem[id]) > 0 {
			ids = append(ids, id)
		}
	}
	p.ids, p.byItem = ids, byItem
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
