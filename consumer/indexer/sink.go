// Package indexer is the indexer consumer's sink: for item events it reads the items'
// current state from Postgres (the truth) and writes it to the search index, newest
// version winning, each event applied once per target index and consumer group.
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

// Dead-letter kinds of the indexer.
const (
	// KindIndexRejected: the search server refuses the item's document for good (a
	// mapping error, say).
	KindIndexRejected = "index-rejected"
	// KindItemMissing: an ItemCreated/ItemUpdated event whose item has no row, and is not
	// known to be deleted, for longer than Config.RowWait. Replay it once the row exists.
	KindItemMissing = "item-missing"
	// KindUnreadableEntity: an item event (of a newer envelope version) whose entity is
	// not an Item, so the indexer cannot tell which row to read.
	KindUnreadableEntity = "unreadable-entity"
)

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

// Config configures the sink. The durations must be positive (options.Search validates
// the flags they come from).
type Config struct {
	// Alias is the index alias (or index) documents are written to.
	Alias string
	// Group is the consumer group: with the index behind Alias it names the target
	// whose record of applied events the sink keeps.
	Group string
	// Retention is how long applied event ids are remembered for deduplication.
	Retention time.Duration
	// BulkConcurrency is how many bulk requests one batch is split into (the search
	// server indexes concurrent requests on separate threads).
	BulkConcurrency int
	// BulkTimeout bounds one bulk request (and each request resolving the alias).
	BulkTimeout time.Duration
	// MaxReadAge bounds how old a read of the items may be when it is written: a plan
	// read earlier (ahead of time, or before retries) is read again. With BulkTimeout it
	// must stay below the index's index.gc_deletes (60s by default), so a stale state
	// always meets the delete tombstone it must lose against.
	MaxReadAge time.Duration
	// RowWait is how long an ItemCreated/ItemUpdated event waits for its item's row
	// before it is dead-lettered as item-missing.
	RowWait time.Duration
	// Backoff paces the retries of deferred operations and missing rows; the runner's
	// policy, so all retries of a consumer follow one.
	Backoff backoff.Policy
}

// Sink applies item events to the search index.
type Sink struct {
	cfg       Config
	store     store
	targets   *targets
	es        *elasticsearch.Client
	log       *slog.Logger
	ready     *observe.Readiness
	onRetry   func(attempt int, err error, wait time.Duration)
	skipped   prometheus.Counter
	lastPrune time.Time
	// last are the event ids the latest batch recorded for its target, which a plan
	// read ahead meanwhile could not see yet.
	last struct {
		target  int32
		applied map[uuid.UUID]bool
	}
	// firstSeen is when this process first found an event's item without a row (see
	// rowDeadline); entries go when the event is settled.
	firstSeen map[uuid.UUID]time.Time

	indexed, deleted, conflicts, duplicates, reads, bulkRetries prometheus.Counter
	bulkSeconds                                                 prometheus.Histogram
}

// NewSink returns the sink and registers its metrics.
func NewSink(cfg Config, pool *pgxpool.Pool, es *elasticsearch.Client, log *slog.Logger, m *observe.Metrics, ready *observe.Readiness) *Sink {
	labels := prometheus.Labels{"consumer": "indexer"}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
		m.Registry.MustRegister(c)
		return c
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Default
	}
	st := store{pool: pool}
	s := &Sink{cfg: cfg, store: st, es: es, log: log, ready: ready, skipped: m.Skipped, lastPrune: time.Now(),
		targets:     &targets{es: es, store: st, alias: cfg.Alias, group: cfg.Group, log: log, staleWrite: cfg.MaxReadAge + cfg.BulkTimeout, timeout: cfg.BulkTimeout},
		onRetry:     observe.OnRetry(log, m, ready, DependencySearch),
		firstSeen:   map[uuid.UUID]time.Time{},
		indexed:     counter("atlas_consumer_documents_indexed_total", "Item documents written to the search index (counted once the batch is recorded as applied)."),
		deleted:     counter("atlas_consumer_documents_deleted_total", "Item documents deleted from the search index, hard or soft deletes (counted once the batch is recorded as applied)."),
		conflicts:   counter("atlas_consumer_version_conflicts_total", "Index operations refused because a newer version of the item is already indexed (counted as done)."),
		duplicates:  counter("atlas_consumer_events_duplicate_total", "Item events whose effect the target index already holds (recorded as applied, or repeated in a batch)."),
		reads:       counter("atlas_consumer_item_queries_total", "Queries reading items from Postgres (one per batch, one per retry of its unsettled items)."),
		bulkRetries: counter("atlas_consumer_bulk_item_retries_total", "Bulk operations sent again after a 429 or 5xx."),
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

// KnownSeries: the indexer's own dead-letter reasons, and Postgres besides the search
// server (runner.KnownSeries).
func (s *Sink) KnownSeries() (deadLetterReasons, dependencies []string) {
	return []string{KindIndexRejected, KindItemMissing, KindUnreadableEntity}, []string{DependencyPostgres}
}

// plan is a batch's read work: the item events the target does not hold yet, grouped by
// item, and the items' current state. ReadAhead makes it ahead of time, while the previous
// batch is still being written.
type plan struct {
	target target
	fresh  []runner.Message
	byItem map[uuid.UUID][]runner.Message
	ids    []uuid.UUID
	items  map[uuid.UUID]*Item
	// deleted are the items without a row that are recorded as hard-deleted.
	deleted map[uuid.UUID]bool
	// readAt is when items and deleted were read.
	readAt time.Time
	// unreadable are item events whose entity is not an Item (dead-lettered).
	unreadable []runner.Rejection
	// skipped counts the batch's other events, duplicates its repeated or already
	// applied ones; they are counted when the batch is recorded.
	skipped, duplicates int
	// dedupe and read are the two queries' durations.
	dedupe, read time.Duration
}

// ReadAhead implements runner.ReadAheadSink: it makes the batch's plan while the
// previous batch is written. A failure is not an error: ApplyReadAhead then makes the
// plan itself.
func (s *Sink) ReadAhead(ctx context.Context, msgs []runner.Message) any {
	p, err := s.makePlan(ctx, msgs)
	if err != nil {
		s.log.Debug("preparing a batch failed; it will be read when applied", "error", err)
		return nil
	}
	return p
}

// Apply implements runner.Sink.
func (s *Sink) Apply(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	return s.ApplyReadAhead(ctx, msgs, nil)
}

// tally counts what a batch did; it reaches the metrics only once the batch is recorded
// as applied, so a batch tried again is never counted twice.
type tally struct {
	skipped, duplicates, indexed, deleted, conflicts int
	// hardDeleted are the items an ItemDeleted event found without a row, with that event.
	hardDeleted map[uuid.UUID]uuid.UUID
}

// ApplyReadAhead implements runner.ReadAheadSink: drop what is not an item event or is already
// applied to the target, bring every touched item's document to the item's current state
// (reading it again when the read is older than MaxReadAge), and only then record the
// events as applied.
func (s *Sink) ApplyReadAhead(ctx context.Context, msgs []runner.Message, readAhead any) ([]runner.Rejection, error) {
	t0 := time.Now()
	p, ok := readAhead.(*plan)
	if ok && p != nil {
		// The previous batch was recorded while this plan was made: drop what it did.
		if s.last.target == p.target.id {
			p.dropApplied(s.last.applied)
		}
	} else {
		var err error
		if p, err = s.makePlan(ctx, msgs); err != nil {
			return nil, err
		}
	}
	t := tally{skipped: p.skipped, duplicates: p.duplicates, hardDeleted: map[uuid.UUID]uuid.UUID{}}
	rejections := p.unreadable
	refused, err := s.settle(ctx, p, &t)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	done := make([]uuid.UUID, 0, len(p.fresh))
	for _, m := range p.fresh {
		id := m.Event.Entity.ID
		if r, bad := refused[id]; bad {
			rejections = append(rejections, runner.Rejection{Record: m.Record, Event: m.Event, Kind: r.kind, Reason: r.reason})
			continue
		}
		done = append(done, m.Event.EventID)
	}
	if err := s.store.record(ctx, p.target.id, done, t.hardDeleted); err != nil {
		return nil, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	for _, m := range p.fresh {
		delete(s.firstSeen, m.Event.EventID)
	}
	s.last.target = p.target.id
	s.last.applied = make(map[uuid.UUID]bool, len(done))
	for _, id := range done {
		s.last.applied[id] = true
	}
	s.skipped.Add(float64(t.skipped))
	s.duplicates.Add(float64(t.duplicates))
	s.indexed.Add(float64(t.indexed))
	s.deleted.Add(float64(t.deleted))
	s.conflicts.Add(float64(t.conflicts))
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("indexer batch", "events", len(msgs), "fresh", len(p.fresh), "items", len(p.ids), "index", p.target.index,
			"read_ahead", ok && p != nil, "dedupe", p.dedupe.String(), "read", p.read.String(), "settle", t1.Sub(t0).String(), "record", time.Since(t1).String())
		for _, m := range p.fresh {
			s.log.Debug("indexed", "event_id", m.Event.EventID, "trace_id", m.Event.Trace(), "event_type", m.Event.EventType, "item_id", m.Event.Entity.ID)
		}
	}
	s.maybePrune(ctx)
	return rejections, nil
}

// refusal is why an item's events are dead-lettered.
type refusal struct{ kind, reason string }

// settle brings every item of the plan to its outcome: its document written (or deleted,
// or found newer), refused for good by the search server, or still without a row past
// its deadline. Operations the server defers (429, 5xx) and items waiting for their row
// are retried with the backoff policy, each retry reading their state again; deferred
// operations are reported like any dependency retry (readiness, retries_total). A
// request that fails outright is returned as the search dependency's error, and the
// runner retries the batch from a new plan.
func (s *Sink) settle(ctx context.Context, p *plan, t *tally) (map[uuid.UUID]refusal, error) {
	refused := map[uuid.UUID]refusal{}
	pending := p.ids
	deferredBefore := false
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 || time.Since(p.readAt) > s.cfg.MaxReadAge {
			if err := s.read(ctx, p, pending); err != nil {
				return nil, err
			}
		}
		now := time.Now()
		var ops []op
		var waiting []uuid.UUID
		for _, id := range pending {
			deletedEvent := p.deleteEvent(id)
			a := decide(p.items[id], deletedEvent != uuid.Nil, p.deleted[id])
			if a != awaitRow {
				ops = append(ops, opFor(id, p.items[id], a))
				if a == hardDelete && deletedEvent != uuid.Nil && !p.deleted[id] {
					t.hardDeleted[id] = deletedEvent
				}
				continue
			}
			if deadline := s.rowDeadline(p, id, now); now.Before(deadline) {
				waiting = append(waiting, id)
				continue
			}
			refused[id] = refusal{kind: KindItemMissing, reason: fmt.Sprintf(
				"item %s has no row in the items table %s after its event, and no ItemDeleted event or recorded hard delete explains it; replay the event once the row exists",
				id, s.cfg.RowWait)}
		}
		results, err := s.bulkParallel(ctx, p.target.index, ops)
		if err != nil {
			return nil, &runner.DependencyError{Dependency: DependencySearch, Err: err}
		}
		var deferred []uuid.UUID
		var reason string
		for i, r := range results {
			o := ops[i]
			switch r.outcome {
			case applied:
				if o.delete() {
					t.deleted++
				} else {
					t.indexed++
				}
			case conflict:
				t.conflicts++
			case retry:
				deferred = append(deferred, o.id)
				reason = r.reason
			case rejected:
				delete(t.hardDeleted, o.id)
				refused[o.id] = refusal{kind: KindIndexRejected, reason: "the search server refused item " + o.id.String() + ": " + r.reason}
			}
		}
		if deferredBefore && len(deferred) == 0 {
			s.ready.Set(DependencySearch, nil)
		}
		pending = append(deferred, waiting...)
		if len(pending) == 0 {
			break
		}
		wait := s.cfg.Backoff.Wait(attempt)
		if len(deferred) > 0 {
			deferredBefore = true
			s.bulkRetries.Add(float64(len(deferred)))
			s.onRetry(attempt, fmt.Errorf("the search server deferred %d of %d bulk operations: %s", len(deferred), len(ops), reason), wait)
		}
		if len(waiting) > 0 {
			s.log.Warn("items have no row yet; reading them again", "items", len(waiting), "item_id", waiting[0],
				"event_id", p.byItem[waiting[0]][0].Event.EventID, "waits_up_to", s.cfg.RowWait.String(), "retry_in", wait.Round(time.Millisecond).String())
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("%d items still unsettled: %w", len(pending), ctx.Err())
		}
	}
	return refused, nil
}

// rowDeadline is the earliest deadline among the item's events in the plan (see the
// function of that name), noting when this process first saw each.
func (s *Sink) rowDeadline(p *plan, item uuid.UUID, now time.Time) time.Time {
	var earliest time.Time
	for _, m := range p.byItem[item] {
		seen, ok := s.firstSeen[m.Event.EventID]
		if !ok {
			seen = now
			s.firstSeen[m.Event.EventID] = seen
		}
		if d := rowDeadline(m.Event.OccurredAt, seen, s.cfg.RowWait); earliest.IsZero() || d.Before(earliest) {
			earliest = d
		}
	}
	return earliest
}

// deleteEvent returns the id of an ItemDeleted event of the item in the plan, or uuid.Nil.
func (p *plan) deleteEvent(item uuid.UUID) uuid.UUID {
	for _, m := range p.byItem[item] {
		if m.Event.EventType == event.ItemDeleted {
			return m.Event.EventID
		}
	}
	return uuid.Nil
}

// makePlan keeps the item events of the batch the target does not hold yet, and reads every
// item they touch, once. Item events of any envelope version are read the same way: the
// index holds Postgres state, never an event's payload.
func (s *Sink) makePlan(ctx context.Context, msgs []runner.Message) (*plan, error) {
	tg, err := s.targets.get(ctx)
	if err != nil {
		return nil, err
	}
	p := &plan{target: tg, byItem: map[uuid.UUID][]runner.Message{}}
	var items []runner.Message
	var eventIDs []uuid.UUID
	inBatch := map[uuid.UUID]bool{}
	for _, m := range msgs {
		if !Handles(m.Event.EventType) {
			p.skipped++
			continue
		}
		if m.Event.Entity.Type != event.EntityItem {
			p.unreadable = append(p.unreadable, runner.Rejection{Record: m.Record, Event: m.Event, Kind: KindUnreadableEntity,
				Reason: fmt.Sprintf("%s event of version %d names entity type %q, not %q: the indexer cannot tell which item to read",
					m.Event.EventType, m.Event.Version, m.Event.Entity.Type, event.EntityItem)})
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
	done, err := s.store.applied(ctx, tg.id, eventIDs)
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
	p.dedupe = time.Since(t0)
	if len(p.ids) > 0 {
		t1 := time.Now()
		if err := s.read(ctx, p, p.ids); err != nil {
			return nil, err
		}
		p.read = time.Since(t1)
	}
	return p, nil
}

// read reads the current state of the given items of the plan (and, for those without
// a row, whether they are recorded as hard-deleted) and notes when.
func (s *Sink) read(ctx context.Context, p *plan, ids []uuid.UUID) error {
	readAt := time.Now()
	s.reads.Inc()
	items, err := s.store.items(ctx, ids)
	if err != nil {
		return &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
	}
	var missing []uuid.UUID
	for _, id := range ids {
		if items[id] == nil {
			missing = append(missing, id)
		}
	}
	deleted := map[uuid.UUID]bool{}
	if len(missing) > 0 {
		if deleted, err = s.store.deletedItems(ctx, missing); err != nil {
			return &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
		}
	}
	if p.items == nil {
		p.items, p.deleted = map[uuid.UUID]*Item{}, map[uuid.UUID]bool{}
	}
	for _, id := range ids {
		p.items[id], p.deleted[id] = items[id], deleted[id]
	}
	p.readAt = readAt
	return nil
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

// bulkParallel sends the operations to the index as up to cfg.BulkConcurrency concurrent
// bulk requests, each bounded by cfg.BulkTimeout (each item's operation is in exactly
// one of them, so order between requests does not matter), and returns the results in
// the order of ops.
func (s *Sink) bulkParallel(ctx context.Context, index string, ops []op) ([]result, error) {
	if len(ops) == 0 {
		return nil, nil
	}
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
			rctx, cancel := context.WithTimeout(ctx, s.cfg.BulkTimeout)
			defer cancel()
			res, err := bulk(rctx, s.es, index, ops[lo:hi])
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
		s.log.Warn("pruning applied events failed; will try again", "error", err)
		return
	}
	if n > 0 {
		s.log.Info("pruned applied events", "count", n, "older_than", s.cfg.Retention.String())
	}
}
