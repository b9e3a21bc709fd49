// Package runner is the consumer runtime both Atlas consumers share: a franz-go group
// consumer with manual commits that polls a batch, decodes it, hands the valid events
// to a Sink, sends poison records to a dead-letter topic, and commits the batch's
// offsets only after all of that has durably succeeded.
//
// Decoding the next batch overlaps applying the current one. Rebalances are blocked
// while batches are in flight (kgo.BlockRebalanceOnPoll), so a partition is only ever
// revoked after its polled records were processed and committed.
// Memory is bounded: franz-go buffers at most one fetch (FetchMaxBytes) per broker until
// it is polled, so fetching pauses by itself while the sink is behind.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
)

// Message is a valid envelope and the record it came from.
type Message struct {
	Record *kgo.Record
	Event  *event.Envelope
}

// Rejection is a record that can never be processed, and why. It goes to the dead-letter topic.
type Rejection struct {
	Record *kgo.Record
	// Event is the decoded envelope when the record was a valid one (nil otherwise).
	Event *event.Envelope
	// Kind is a stable, machine-readable reason class, e.g. "not-json".
	Kind string
	// Reason is the human-readable explanation.
	Reason string
}

// Rejection kinds the runner itself produces; sinks add their own.
const (
	// DependencyKafka and DependencyDeadLetter name what the runner itself retries (in
	// logs, atlas_consumer_retries_total and /readyz).
	DependencyKafka      = "kafka"
	DependencyDeadLetter = "dead-letter"

	KindNotJSON         = "not-json"
	KindInvalidEnvelope = "invalid-envelope"
	KindTooLarge        = "too-large"
)

// KnownSeries is implemented by a sink with dead-letter reasons or retried dependencies
// of its own (besides its Name), so their series exist from the start (observe.Metrics.Known).
type KnownSeries interface {
	KnownSeries() (deadLetterReasons, dependencies []string)
}

// Sink applies valid events to the consumer's store.
type Sink interface {
	// Name names the sink's dependency in logs, metrics and readiness, e.g. "postgres".
	Name() string
	// Apply durably applies msgs and returns the ones it can never apply (they are
	// dead-lettered). An error means nothing is known to be durable: the same batch is
	// offered again after a backoff, so Apply must be idempotent.
	Apply(ctx context.Context, msgs []Message) ([]Rejection, error)
}

// ReadAheadSink is a Sink that does a batch's read-only work ahead of time: ReadAhead
// runs while the previous batch is being applied, and ApplyReadAhead starts from its result
// (nil when it failed). Retries of a failed batch use Apply.
type ReadAheadSink interface {
	ReadAhead(ctx context.Context, msgs []Message) any
	ApplyReadAhead(ctx context.Context, msgs []Message, readAhead any) ([]Rejection, error)
}

// DependencyError says which dependency a sink failure came from, when a sink has more
// than one (readiness and the retry metrics name it).
type DependencyError struct {
	Dependency string
	Err        error
}

func (e *DependencyError) Error() string { return e.Dependency + ": " + e.Err.Error() }
func (e *DependencyError) Unwrap() error { return e.Err }

// Config configures a Runner.
type Config struct {
	Kafka           kafkaconn.Config
	Topic           string
	Group           string
	DeadLetterTopic string
	// StartOffset is where a group without committed offsets starts: "earliest" or "latest".
	StartOffset     string
	BatchSize       int
	BatchWait       time.Duration
	MaxEventBytes   int
	FetchMaxBytes   int32
	ShutdownTimeout time.Duration
	// SessionTimeout is the group session timeout.
	SessionTimeout time.Duration
	Backoff        backoff.Policy
	// Skip, when set, drops a record before it is decoded; its offset still advances.
	Skip func(*kgo.Record) bool
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate()}
	if c.Topic == "" {
		errs = append(errs, errors.New("the topic is empty"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("the consumer group is empty"))
	}
	if c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("the dead-letter topic is empty"))
	} else if c.DeadLetterTopic == c.Topic {
		errs = append(errs, errors.New("the dead-letter topic must differ from the topic"))
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		errs = append(errs, fmt.Errorf("start offset %q: want earliest or latest", c.StartOffset))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d: must be at least 1", c.BatchSize))
	}
	if c.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("batch wait %s: must not be negative", c.BatchWait))
	}
	switch {
	case c.MaxEventBytes < 1:
		errs = append(errs, fmt.Errorf("max event bytes %d: must be positive", c.MaxEventBytes))
	case c.MaxEventBytes > MaxEventBytesLimit:
		errs = append(errs, fmt.Errorf("max event bytes %d: above %d, the largest a dead letter of it (the value twice over, plus headers) fits in one Kafka request",
			c.MaxEventBytes, MaxEventBytesLimit))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s: must be positive", c.ShutdownTimeout))
	}
	if c.SessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("session timeout %s: must be positive (brokers accept 6s to 30m by default)", c.SessionTimeout))
	}
	return errors.Join(errs...)
}

// MaxEventBytesLimit is the largest MaxEventBytes: a dead letter may carry the value
// twice (as produced and in its copy) plus 1 MiB of headers, and a Kafka request's size
// is a signed 32-bit number.
const MaxEventBytesLimit = (math.MaxInt32 - 1<<20) / 2

// Runner consumes one topic in one group into one Sink.
type Runner struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	metrics *observe.Metrics
	ready   *observe.Readiness
	client  *kgo.Client

	// rebalanceWaiting is set when a rebalance waits for the batches in flight.
	rebalanceWaiting atomic.Bool

	// refused holds, per partition, the last record of a batch whose commit the group
	// refused (it had moved on) while this member may keep that partition: a member that
	// rejoins keeps its partitions and its read position, so nobody redelivers the batch.
	// It is committed with the next commit, or when idle; a revoked partition's entry
	// goes (its new owner redelivers from the last commit).
	refusedMu sync.Mutex
	refused   map[partitionKey]*kgo.Record

	assignedMu sync.Mutex
	assigned   map[int32]bool // partitions of cfg.Topic this member owns (measureLag)
}

type partitionKey struct {
	topic     string
	partition int32
}

// New validates cfg and creates the Kafka client. Run starts consuming.
func New(cfg Config, sink Sink, log *slog.Logger, metrics *observe.Metrics, ready *observe.Readiness) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer configuration: %w", err)
	}
	if cfg.FetchMaxBytes <= 0 {
		cfg.FetchMaxBytes = 16 << 20
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Default
	}
	r := &Runner{cfg: cfg, sink: sink, log: log, metrics: metrics, ready: ready}
	reasons, deps := []string{KindNotJSON, KindInvalidEnvelope, KindTooLarge}, []string{DependencyKafka, DependencyDeadLetter, sink.Name()}
	if k, ok := sink.(KnownSeries); ok {
		sr, sd := k.KnownSeries()
		reasons, deps = append(reasons, sr...), append(deps, sd...)
	}
	metrics.Known(reasons, deps)
	base, err := cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	start := kgo.NewOffset().AtStart()
	if cfg.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	// A dead letter carries the whole original value plus headers.
	produceMax := int32(cfg.MaxEventBytes)*2 + 1<<20
	if produceMax < 1<<20 {
		produceMax = 1 << 20
	}
	opts := append(base,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.ProducerBatchMaxBytes(produceMax),
		kgo.RecordDeliveryTimeout(30*time.Second),
		// franz-go's own plugins: its log lines through slog, and its client metrics (connects,
		// request latency, bytes and records fetched and produced, per broker) as
		// atlas_consumer_kafka_* on the consumer's registry.
		kgo.WithLogger(kslog.New(log.With("component", "kafka"))),
		kgo.WithHooks(kprom.NewMetrics("atlas_consumer", kprom.Subsystem("kafka"), kprom.Registry(metrics.Registry),
			kprom.WithStaticLabel(prometheus.Labels{"consumer": metrics.Mode}))),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onRevoked),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { r.rebalanceWaiting.Store(true) }),
	)
	opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	r.client = client
	return r, nil
}

// Run consumes until ctx ends. It then stops fetching, finishes and commits the batch in
// flight (within the shutdown timeout), leaves the group and returns. It returns an
// error only when the batch in flight could not be finished in time (it is redelivered).
func (r *Runner) Run(ctx context.Context) error {
	// In-flight work, and leaving the group, outlive ctx by at most the shutdown timeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.ShutdownTimeout, cancelWork) })
	defer stopTimer()

	err := backoff.Retry(ctx, r.cfg.Backoff, r.onRetry(DependencyKafka), func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.client.Ping(pctx); err != nil {
			return fmt.Errorf("reach Kafka brokers %v: %w", r.cfg.Kafka.Brokers, err)
		}
		return nil
	})
	if err != nil {
		r.leave(work)
		return nil // ctx ended before the brokers answered: nothing to finish
	}
	r.ready.Set(DependencyKafka, nil)
	go r.watchTopics(ctx)
	go r.measureLag(ctx)
	r.ready.MarkStarted()
	r.log.Info("consuming", "topic", r.cfg.Topic, "group", r.cfg.Group, "dead_letter_topic", r.cfg.DeadLetterTopic,
		"batch_size", r.cfg.BatchSize, "batch_wait", r.cfg.BatchWait.String())

	runErr := r.loop(ctx, work)
	r.leave(work)
	return runErr
}

// leave leaves the group and closes the client, unless work (the shutdown deadline) ends
// first: a member still waiting in a group join cannot leave before the broker answers
// the join, which can take a dead predecessor's whole session timeout. Exiting without
// leaving loses nothing (nothing unfinished was committed); the broker then gives the
// partitions away when the session times out.
func (r *Runner) leave(work context.Context) {
	left := make(chan struct{})
	go func() {
		defer close(left)
		r.client.AllowRebalance()
		leaveCtx, cancel := context.WithTimeout(work, 10*time.Second)
		defer cancel()
		if err := r.client.LeaveGroupContext(leaveCtx); err != nil {
			r.log.Warn("leaving the consumer group", "group", r.cfg.Group, "error", err)
		}
		r.client.Close()
	}()
	select {
	case <-left:
		r.log.Info("stopped consuming", "group", r.cfg.Group)
	case <-work.Done():
		r.log.Warn("the shutdown timeout passed before the consumer group was left (a group join was still under way); exiting without leaving it",
			"group", r.cfg.Group, "shutdown_timeout", r.cfg.ShutdownTimeout.String())
	}
}

// idleCheck is how often an idle consumer checks that the brokers still answer, so
// readiness reflects a broker outage even when no records flow.
const idleCheck = 5 * time.Second

// poll gathers up to BatchSize records: it waits for the first record as long as ctx
// lasts, then at most BatchWait for more. idle says that nothing else is in flight, so
// while no record arrives poll lets waiting rebalances proceed (every PollRecords call,
// even one that returns nothing but an error, blocks rebalances until AllowRebalance).
func (r *Runner) poll(ctx context.Context, idle bool) []*kgo.Record {
	var out []*kgo.Record
	var deadline time.Time
	failures := 0
	for len(out) < r.cfg.BatchSize {
		var pctx context.Context
		var cancel context.CancelFunc
		if len(out) > 0 {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		} else {
			pctx, cancel = context.WithTimeout(ctx, idleCheck)
		}
		fetches := r.client.PollRecords(pctx, r.cfg.BatchSize-len(out))
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if fetches.IsClientClosed() {
			return out
		}
		failed := r.fetchErrors(fetches)
		got := fetches.Records()
		if len(out) == 0 && len(got) == 0 {
			if idle {
				r.client.AllowRebalance()
			}
			switch {
			case ctx.Err() != nil:
				return nil
			case failed:
				r.sleep(ctx, r.cfg.Backoff.Wait(failures))
				failures++
			case timedOut:
				r.checkBrokers(ctx)
				if idle {
					r.commitRefused(ctx)
				}
			}
			continue
		}
		if len(out) == 0 {
			deadline = time.Now().Add(r.cfg.BatchWait)
		}
		out = append(out, got...)
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return out
		}
	}
	return out
}

// checkBrokers pings the cluster and reports the outcome as the kafka readiness.
func (r *Runner) checkBrokers(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := r.client.Ping(pctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		err = fmt.Errorf("no broker answers: %w", err)
		r.log.Warn("kafka unavailable", "error", err)
	}
	r.ready.Set(DependencyKafka, err)
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// fetchErrors reports broker-side fetch problems (franz-go retries them itself) and
// whether there were any.
func (r *Runner) fetchErrors(fetches kgo.Fetches) bool {
	var failed error
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		r.log.Warn("fetch failed; the client retries", "topic", topic, "partition", partition, "error", err)
		failed = err
	})
	if failed != nil {
		r.ready.Set(DependencyKafka, failed)
		r.metrics.Retries.WithLabelValues(DependencyKafka).Inc()
		return true
	}
	if fetches.NumRecords() > 0 {
		r.ready.Set(DependencyKafka, nil)
	}
	return false
}

// batch is a polled, decoded batch on its way to the sink.
type batch struct {
	records  []*kgo.Record
	msgs     []Message
	rejected []Rejection
	// readAhead is the sink's work done ahead (ReadAheadSink).
	readAhead any
	start     time.Time
	decode    time.Duration
}

// loop runs the two-stage pipeline: while one batch is applied and committed (finish),
// the next one is polled and decoded (decodeBatch). Rebalances stay blocked while anything
// is in flight; when franz-go signals a waiting rebalance, the pipeline drains and
// allows it. It returns an error only when work ended with a batch unfinished.
func (r *Runner) loop(ctx, work context.Context) error {
	var cur *batch
	for {
		if cur == nil {
			if ctx.Err() != nil {
				return nil
			}
			records := r.poll(ctx, true)
			if len(records) == 0 {
				r.client.AllowRebalance()
				continue
			}
			cur = r.decodeBatch(ctx, records)
		}
		errc := make(chan error, 1)
		finished := make(chan struct{})
		go func(b *batch) {
			defer close(finished)
			errc <- r.finish(work, b)
		}(cur)
		var next *batch
		if ctx.Err() == nil && !r.rebalanceWaiting.Load() {
			pctx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-finished:
					cancel()
				case <-pctx.Done():
				}
			}()
			if records := r.poll(pctx, false); len(records) > 0 {
				next = r.decodeBatch(ctx, records)
			}
			cancel()
		}
		if err := <-errc; err != nil {
			n := len(cur.records)
			if next != nil {
				n += len(next.records)
			}
			return fmt.Errorf("%d records not finished before the shutdown timeout (they will be redelivered): %w", n, err)
		}
		cur = next
		if cur == nil {
			r.rebalanceWaiting.Store(false)
			r.client.AllowRebalance()
		}
	}
}

// decodeBatch decodes a polled batch and lets a ReadAheadSink start on it.
func (r *Runner) decodeBatch(ctx context.Context, records []*kgo.Record) *batch {
	b := &batch{records: records, start: time.Now()}
	r.metrics.Consumed.Add(float64(len(records)))
	r.metrics.BatchSize.Observe(float64(len(records)))
	b.msgs, b.rejected = r.decodeRecords(records)
	if p, ok := r.sink.(ReadAheadSink); ok && len(b.msgs) > 0 {
		b.readAhead = p.ReadAhead(ctx, b.msgs)
	}
	b.decode = time.Since(b.start)
	return b
}

// finish applies, dead-letters and commits one batch. It returns an error only when
// ctx ended first.
func (r *Runner) finish(ctx context.Context, b *batch) error {
	applyStart := time.Now()
	rejected := b.rejected
	if len(b.msgs) > 0 {
		failing := map[string]bool{r.sink.Name(): true}
		onRetry := func(attempt int, err error, wait time.Duration) {
			dep := r.sink.Name()
			var de *DependencyError
			if errors.As(err, &de) {
				dep = de.Dependency
			}
			failing[dep] = true
			r.onRetry(dep)(attempt, err, wait)
		}
		readAhead := b.readAhead
		err := backoff.Retry(ctx, r.cfg.Backoff, onRetry, func(ctx context.Context) error {
			var rj []Rejection
			var err error
			if p, ok := r.sink.(ReadAheadSink); ok && readAhead != nil {
				rj, err = p.ApplyReadAhead(ctx, b.msgs, readAhead)
				readAhead = nil // a retry starts over
			} else {
				rj, err = r.sink.Apply(ctx, b.msgs)
			}
			if err != nil {
				return err
			}
			rejected = append(rejected, rj...)
			return nil
		})
		if err != nil {
			return err
		}
		for dep := range failing {
			r.ready.Set(dep, nil)
		}
	}
	applied := time.Now()
	if len(rejected) > 0 {
		if err := r.deadLetter(ctx, rejected); err != nil {
			return err
		}
	}
	if err := r.commit(ctx, b.records); err != nil {
		return err
	}
	done := time.Now()
	r.metrics.BatchDuration.Observe(done.Sub(b.start).Seconds())
	r.log.Debug("batch done", "records", len(b.records), "valid", len(b.msgs), "dead_lettered", len(rejected),
		"decode", b.decode.String(), "apply", applied.Sub(applyStart).String(), "commit", done.Sub(applied).String())
	return nil
}

// decodeRecords decodes the records into valid messages and rejections.
func (r *Runner) decodeRecords(records []*kgo.Record) ([]Message, []Rejection) {
	msgs := make([]Message, 0, len(records))
	var rejected []Rejection
	for _, rec := range records {
		if len(rec.Value) > r.cfg.MaxEventBytes {
			rejected = append(rejected, Rejection{Record: rec, Kind: KindTooLarge,
				Reason: fmt.Sprintf("value of %d bytes exceeds the %d-byte limit for one event", len(rec.Value), r.cfg.MaxEventBytes)})
			continue
		}
		if r.cfg.Skip != nil && r.cfg.Skip(rec) {
			r.metrics.Skipped.Inc()
			continue
		}
		env, err := event.Decode(rec.Value)
		if err != nil {
			kind := KindInvalidEnvelope
			var inv *event.InvalidError
			if errors.As(err, &inv) && inv.NotJSON() {
				kind = KindNotJSON
			}
			rejected = append(rejected, Rejection{Record: rec, Kind: kind, Reason: err.Error()})
			continue
		}
		msgs = append(msgs, Message{Record: rec, Event: env})
	}
	return msgs, rejected
}

// commit commits the batch's offsets. A commit refused because the group moved on (the
// member was fenced or kicked out) is given up: the new owner reprocesses from the last
// committed offset, which the sink's idempotence absorbs.
func (r *Runner) commit(ctx context.Context, records []*kgo.Record) error {
	records = append(r.takeRefused(), records...)
	err := backoff.Retry(ctx, r.cfg.Backoff, r.onRetry(DependencyKafka), func(ctx context.Context) error {
		err := r.client.CommitRecords(ctx, records...)
		if err == nil {
			return nil
		}
		r.metrics.CommitFailures.Inc()
		if groupMovedOn(err) {
			return backoff.Permanent(fmt.Errorf("%w: %w", errGroupMovedOn, err))
		}
		return fmt.Errorf("commit offsets: %w", err)
	})
	switch {
	case err == nil:
		r.ready.Set(DependencyKafka, nil)
		r.metrics.Committed.Inc()
		return nil
	case errors.Is(err, errGroupMovedOn):
		r.keepRefused(records)
		r.log.Warn("offsets not committed: the group rebalanced while the batch was processed; they are committed again while this member keeps the partitions, and redelivered by a new owner otherwise", "error", err)
		return nil
	default:
		return err
	}
}

// onRetry returns the hook that logs, counts and reports a failing dependency.
func (r *Runner) onRetry(dependency string) func(int, error, time.Duration) {
	return observe.OnRetry(r.log, r.metrics, r.ready, dependency)
}

func (r *Runner) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	r.log.Info("partitions assigned", "group", r.cfg.Group, "partitions", assigned)
	r.assignedMu.Lock()
	if r.assigned == nil {
		r.assigned = map[int32]bool{}
	}
	for _, p := range assigned[r.cfg.Topic] {
		r.assigned[p] = true
	}
	r.assignedMu.Unlock()
	r.takeLatestPositions(ctx, cl, assigned)
}

func (r *Runner) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.log.Info("partitions revoked", "group", r.cfg.Group, "partitions", revoked)
	r.assignedMu.Lock()
	for _, p := range revoked[r.cfg.Topic] {
		delete(r.assigned, p)
	}
	r.assignedMu.Unlock()
	r.refusedMu.Lock()
	for topic, parts := range revoked {
		for _, p := range parts {
			r.metrics.Lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
			delete(r.refused, partitionKey{topic, p})
		}
	}
	r.refusedMu.Unlock()
}

// keepRefused remembers the last record per partition of a commit the group refused.
func (r *Runner) keepRefused(records []*kgo.Record) {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	if r.refused == nil {
		r.refused = map[partitionKey]*kgo.Record{}
	}
	for _, rec := range records {
		k := partitionKey{rec.Topic, rec.Partition}
		if prev, ok := r.refused[k]; !ok || rec.Offset > prev.Offset {
			r.refused[k] = rec
		}
	}
}

// takeRefused returns the refused records to commit again, and forgets them.
func (r *Runner) takeRefused() []*kgo.Record {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	out := make([]*kgo.Record, 0, len(r.refused))
	for _, rec := range r.refused {
		out = append(out, rec)
	}
	r.refused = nil
	return out
}

// commitRefused commits again what the group refused before, when nothing else would
// (an idle consumer).
func (r *Runner) commitRefused(ctx context.Context) {
	r.refusedMu.Lock()
	pending := len(r.refused)
	r.refusedMu.Unlock()
	if pending == 0 {
		return
	}
	if err := r.commit(ctx, nil); err != nil {
		r.log.Warn("committing refused offsets again", "error", err)
	}
}
