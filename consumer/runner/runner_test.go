package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
)

const (
	testTopic = "events"
	testDLQ   = "events-dlq"
	testGroup = "audit"
)

// testKafka is one in-process kfake cluster and a client of it that produces and
// administers. Every test gets its own, so no test sees another's groups or offsets.
type testKafka struct {
	cluster *kfake.Cluster
	client  *kgo.Client
	adm     *kadm.Client
}

// newKafka starts a one-broker cluster with topics seeded at the given partition count.
// kfake creates no topic on demand unless told to (kfake.AllowAutoTopicCreation), so
// a topic left out here does not exist until the test creates it.
func newKafka(t *testing.T, partitions int32, topics ...string) *testKafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &testKafka{cluster: c, client: cl, adm: kadm.NewClient(cl)}
}

// produce writes the records (Topic and Partition set by the caller) and waits for the acks.
func (k *testKafka) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// committed returns the group's committed offset of the partition, -1 when there is none.
func (k *testKafka) committed(t *testing.T, group, topic string, partition int32) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := k.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return -1 // kfake answers so for a group that never committed
	}
	if err != nil {
		t.Fatalf("fetch committed offsets of %s: %v", group, err)
	}
	if o, ok := offs.Lookup(topic, partition); ok && o.Err == nil {
		return o.At
	}
	return -1
}

// endOffset returns the partition's end offset (the offset of the next record).
func (k *testKafka) endOffset(t *testing.T, topic string, partition int32) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	o, ok := ends.Lookup(topic, partition)
	if !ok {
		t.Fatalf("no end offset for %s/%d", topic, partition)
	}
	return o.Offset
}

// validRecords returns n valid envelopes as records of topic, spread round-robin over
// the partitions.
func validRecords(t *testing.T, n int, partitions int32) []*kgo.Record {
	t.Helper()
	gen := eventgen.New(7)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		env, err := gen.Next()
		if err != nil {
			t.Fatal(err)
		}
		rec, err := event.Record(testTopic, env)
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition = int32(i) % partitions
		recs = append(recs, rec)
	}
	return recs
}

// testConfig is a valid configuration for the cluster with a small backoff, so retries
// take milliseconds. The session timeout is kfake's minimum.
func testConfig(k *testKafka) Config {
	return Config{
		Kafka:           kafkaconn.Config{Brokers: k.cluster.ListenAddrs(), ClientID: "runner-test"},
		Topic:           testTopic,
		Group:           testGroup,
		DeadLetterTopic: testDLQ,
		StartOffset:     "earliest",
		BatchSize:       10,
		BatchWait:       20 * time.Millisecond,
		MaxEventBytes:   1 << 20,
		ShutdownTimeout: 5 * time.Second,
		SessionTimeout:  6 * time.Second,
		Backoff:         backoff.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
}

// syncBuffer collects log output from the runner's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is a Runner started by startRunner.
type running struct {
	r       *Runner
	ready   *observe.Readiness
	metrics *observe.Metrics
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned
	err     error         // Run's result, once done is closed
	logs    *syncBuffer
}

// startRunner creates a Runner and runs it until the test ends (or the test cancels it).
// The runner's log is printed only when the test failed.
func startRunner(t *testing.T, cfg Config, sink Sink) *running {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	metrics, ready := observe.NewMetrics("audit"), observe.NewReadiness()
	r, err := New(cfg, sink, log, metrics, ready)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, ready: ready, metrics: metrics, cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() {
		run.err = r.Run(ctx)
		close(run.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-run.done:
		case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
			t.Errorf("Run did not return after its context ended")
		}
		if t.Failed() {
			t.Logf("runner %s log:\n%s", cfg.Group, logs.String())
		}
	})
	return run
}

// wait returns Run's result, failing the test when Run does not return within d.
func (run *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-run.done:
		return run.err
	case <-time.After(d):
		t.Fatalf("Run did not return within %s", d)
		return nil
	}
}

// eventually polls cond every 10ms until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counter returns a counter's current value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// testSink is a Sink whose Apply the test scripts. It records every record it was offered.
type testSink struct {
	name  string
	apply func(ctx context.Context, msgs []Message) error

	mu      sync.Mutex
	calls   [][]int64 // offsets offered per call
	applied map[tp]int
}

type tp struct {
	partition int32
	offset    int64
}

func (s *testSink) Name() string { return s.name }

func (s *testSink) Apply(ctx context.Context, msgs []Message) ([]Rejection, error) {
	offsets := make([]int64, len(msgs))
	for i, m := range msgs {
		offsets[i] = m.Record.Offset
	}
	s.mu.Lock()
	s.calls = append(s.calls, offsets)
	s.mu.Unlock()
	if s.apply != nil {
		if err := s.apply(ctx, msgs); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied == nil {
		s.applied = map[tp]int{}
	}
	for _, m := range msgs {
		s.applied[tp{m.Record.Partition, m.Record.Offset}]++
	}
	return nil, nil
}

// appliedCopy returns how often each (partition, offset) was applied successfully.
func (s *testSink) appliedCopy() map[tp]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[tp]int, len(s.applied))
	for k, v := range s.applied {
		out[k] = v
	}
	return out
}

func (s *testSink) callsCopy() [][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// readyLine returns the readiness line naming dependency ("<dependency> unavailable: ..."),
// or "" when the dependency is not reported failing.
func readyLine(ready *observe.Readiness, dependency string) string {
	_, why := ready.Ready()
	for _, line := range strings.Split(why, "\n") {
		if strings.HasPrefix(line, dependency+" unavailable:") {
			return line
		}
	}
	return ""
}

// TestOffsetsAreCommittedOnlyAfterTheSinkSucceeded: a batch the sink cannot apply is
// retried and its offsets are not committed, so a crash while the sink is down
// redelivers it instead of losing it; readiness names the sink meanwhile. Once the sink
// recovers, the same batch is applied and the offsets reach the end of the partition.
func TestOffsetsAreCommittedOnlyAfterTheSinkSucceeded(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	var failing atomic.Bool
	var failures atomic.Int32
	sink := &testSink{name: "postgres", apply: func(context.Context, []Message) error {
		if failing.Load() {
			failures.Add(1)
			return errors.New("connection refused")
		}
		return nil
	}}
	run := startRunner(t, testConfig(k), sink)

	// A first batch goes through, so the committed offset has somewhere to stay.
	recs := validRecords(t, 7, 1)
	k.produce(t, recs[:3]...)
	eventually(t, 5*time.Second, "the first batch was not committed", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 3
	})

	before := len(sink.callsCopy())
	failing.Store(true)
	k.produce(t, recs[3:]...)
	eventually(t, 5*time.Second, "the sink was not retried", func() bool { return failures.Load() >= 3 })
	if got := k.committed(t, testGroup, testTopic, 0); got != 3 {
		t.Fatalf("committed offset %d while the sink fails, want 3 (unchanged)", got)
	}
	if line := readyLine(run.ready, "postgres"); !strings.Contains(line, "connection refused") {
		_, why := run.ready.Ready()
		t.Fatalf("readiness while the sink fails: %q, want a line naming postgres", why)
	}
	// Every retry offers the batch again from its first record: nothing was skipped.
	calls := sink.callsCopy()[before:]
	for _, c := range calls {
		if len(c) == 0 || c[0] != 3 {
			t.Fatalf("the sink was offered offsets %v while failing, want every call to start at 3 (calls %v)", c, calls)
		}
	}

	failing.Store(false)
	eventually(t, 5*time.Second, "the offsets did not reach the end after the sink recovered", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == k.endOffset(t, testTopic, 0)
	})
	applied := sink.appliedCopy()
	for o := int64(0); o < 7; o++ {
		if applied[tp{0, o}] != 1 {
			t.Errorf("offset %d applied %d times, want once", o, applied[tp{0, o}])
		}
	}
	eventually(t, 2*time.Second, "readiness did not recover with the sink", func() bool {
		ok, _ := run.ready.Ready()
		return ok
	})
}

// TestAFailedDeadLetterWriteCommitsNothing: a poison record is only skipped once it is
// safely in the dead-letter topic. While the dead-letter topic cannot be written (here it
// does not exist), the batch's offsets are not committed and readiness names
// "dead-letter"; when it can, the dead letter appears with its reason and the offsets move.
func TestAFailedDeadLetterWriteCommitsNothing(t *testing.T) {
	k := newKafka(t, 1, testTopic) // no dead-letter topic
	lookups := k.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: testDLQ, Observe: true, Count: -1})
	sink := &testSink{name: "postgres"}
	run := startRunner(t, testConfig(k), sink)

	recs := validRecords(t, 2, 1)
	poison := &kgo.Record{Topic: testTopic, Value: []byte("not json"), Key: []byte("k1")}
	k.produce(t, recs[0], poison, recs[1])

	eventually(t, 8*time.Second, "readiness did not name the failed dead-letter write", func() bool {
		return readyLine(run.ready, "dead-letter") != ""
	})
	// The runner is still at it: franz-go looks the dead-letter topic up again for the
	// retried write. Only then is "not committed" more than "not committed yet".
	seen := lookups.Hits()
	eventually(t, 5*time.Second, "the dead-letter write was not retried", func() bool { return lookups.Hits() >= seen+2 })
	if got := k.committed(t, testGroup, testTopic, 0); got != -1 {
		t.Fatalf("committed offset %d while the dead letter cannot be written, want none", got)
	}
	if n := counter(t, run.metrics.DeadLettered.WithLabelValues(KindNotJSON)); n != 0 {
		t.Errorf("%v records counted as dead-lettered before the dead-letter topic existed, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := k.adm.CreateTopic(ctx, 1, 1, nil, testDLQ); err != nil {
		t.Fatal(err)
	}
	eventually(t, 8*time.Second, "the batch was not committed after the dead-letter topic appeared", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 3
	})

	if n := counter(t, run.metrics.DeadLettered.WithLabelValues(KindNotJSON)); n != 1 {
		t.Errorf("%v records counted as dead-lettered, want 1", n)
	}
	dl := consumeAll(t, k, testDLQ, 1)
	if got := string(dl[0].Value); got != "not json" {
		t.Errorf("dead letter value %q, want the original", got)
	}
	for key, want := range map[string]string{
		HeaderErrorKind:       KindNotJSON,
		HeaderSourceTopic:     testTopic,
		HeaderSourcePartition: "0",
		HeaderSourceOffset:    "1",
		HeaderConsumerGroup:   testGroup,
	} {
		if got := string(event.Header(dl[0], key)); got != want {
			t.Errorf("dead letter header %s = %q, want %q", key, got, want)
		}
	}
	if applied := sink.appliedCopy(); len(applied) != 2 || applied[tp{0, 0}] == 0 || applied[tp{0, 2}] == 0 {
		t.Errorf("the sink applied %v, want offsets 0 and 2 (the valid records)", applied)
	}
}

// TestReadinessRecoversAfterTheDeadLetterTopicDoes: readiness must not keep reporting
// "dead-letter" once dead letters are written again, or a consumer that recovered on
// its own stays out of service (a 503 on /readyz) until it is restarted.
func TestReadinessRecoversAfterTheDeadLetterTopicDoes(t *testing.T) {
	k := newKafka(t, 1, testTopic)
	run := startRunner(t, testConfig(k), &testSink{name: "postgres"})
	k.produce(t, &kgo.Record{Topic: testTopic, Value: []byte("not json")})
	eventually(t, 8*time.Second, "readiness did not name the dead-letter write", func() bool {
		return readyLine(run.ready, "dead-letter") != ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := k.adm.CreateTopic(ctx, 1, 1, nil, testDLQ); err != nil {
		t.Fatal(err)
	}
	eventually(t, 8*time.Second, "the batch was not committed after the dead-letter topic appeared", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 1
	})
	if line := readyLine(run.ready, "dead-letter"); line != "" {
		t.Fatalf("readiness still reports %q after the dead letter was written", line)
	}
}

// consumeAll reads n records of topic from the start.
func consumeAll(t *testing.T, k *testKafka, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// handOffs watches, at the broker, what a member does with the partitions it gives up
// in a rebalance: a member that gave a partition up (its JoinGroup no longer claims it)
// must have committed everything it took from it, so neither its commits nor the end
// of its sink's work may come later. Control functions run on the cluster goroutine in
// the order the broker handles the requests.
type handOffs struct {
	memberPrefix string // the member's client id, which kfake starts its member ids with

	mu      sync.Mutex
	claimed map[int32]bool
	given   map[int32]bool
	late    []string
}

func watchHandOffs(k *testKafka, clientID string) *handOffs {
	h := &handOffs{memberPrefix: clientID + "-", claimed: map[int32]bool{}, given: map[int32]bool{}}
	k.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		jr := req.(*kmsg.JoinGroupRequest)
		if !strings.HasPrefix(jr.MemberID, h.memberPrefix) {
			return nil, nil, false
		}
		for _, proto := range jr.Protocols {
			meta := kmsg.NewConsumerMemberMetadata()
			if proto.Name != "cooperative-sticky" || meta.ReadFrom(proto.Metadata) != nil {
				continue
			}
			now := map[int32]bool{}
			for _, owned := range meta.OwnedPartitions {
				if owned.Topic == testTopic {
					for _, p := range owned.Partitions {
						now[p] = true
					}
				}
			}
			h.mu.Lock()
			for p := range h.claimed {
				if !now[p] {
					h.given[p] = true
				}
			}
			for p := range now {
				delete(h.given, p)
			}
			h.claimed = now
			h.mu.Unlock()
		}
		return nil, nil, false // observe only
	})
	k.cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cr := req.(*kmsg.OffsetCommitRequest)
		if !strings.HasPrefix(cr.MemberID, h.memberPrefix) {
			return nil, nil, false
		}
		for _, topic := range cr.Topics {
			for _, p := range topic.Partitions {
				h.check(p.Partition, fmt.Sprintf("committed offset %d", p.Offset))
			}
		}
		return nil, nil, false
	})
	return h
}

// check records a violation when partition p was given up already.
func (h *handOffs) check(p int32, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.given[p] {
		h.late = append(h.late, fmt.Sprintf("partition %d: %s after the partition was given up", p, what))
	}
}

func (h *handOffs) report() (given []int32, late []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p := range h.given {
		given = append(given, p)
	}
	slices.Sort(given)
	return given, slices.Clone(h.late)
}

// TestThePipelineDrainsBeforeARebalance: a second member joining takes partitions away
// from a member with batches in flight. The first member finishes and commits what it
// polled before the partitions are revoked, so the new owner starts exactly after it:
// across both members every record is applied, and none twice.
func TestThePipelineDrainsBeforeARebalance(t *testing.T) {
	const partitions, applyTime = 4, 300 * time.Millisecond
	k := newKafka(t, partitions, testTopic, testDLQ)
	cfgA, cfgB := testConfig(k), testConfig(k)
	cfgA.Kafka.ClientID, cfgB.Kafka.ClientID = "runner-a", "runner-b"
	handOff := watchHandOffs(k, cfgA.Kafka.ClientID)

	var runA atomic.Pointer[running]
	var waitingSeen atomic.Bool
	slow := func(ctx context.Context, msgs []Message) error {
		// A rebalance that waits when a batch starts or ends waited while it was in flight.
		waiting := func() {
			if run := runA.Load(); run != nil && run.r.rebalanceWaiting.Load() {
				waitingSeen.Store(true)
			}
		}
		waiting()
		defer waiting()
		select {
		case <-time.After(applyTime):
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, m := range msgs {
			handOff.check(m.Record.Partition, fmt.Sprintf("A finished applying offset %d", m.Record.Offset))
		}
		return nil
	}
	sinkA := &testSink{name: "postgres", apply: slow}
	sinkB := &testSink{name: "postgres"}
	runA.Store(startRunner(t, cfgA, sinkA))

	// The records trickle in, one per partition at a time, so A always has a batch in
	// flight and every batch holds records of several partitions: whichever partitions B
	// takes, A has some of their records in flight when the rebalance comes. They keep
	// coming until B has taken over (how long that takes depends on when A's and B's
	// next heartbeats are due: up to 3 s each).
	pool := validRecords(t, partitions*100, partitions)
	stopProducing, produced := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(produced)
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(pool); i += partitions {
			if err := k.client.ProduceSync(context.Background(), pool[i:i+partitions]...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			select {
			case <-stopProducing:
				return
			case <-tick.C:
			}
		}
	}()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopProducing) }); <-produced }
	t.Cleanup(stop)
	eventually(t, 5*time.Second, "A applied nothing", func() bool { return len(sinkA.appliedCopy()) > 0 })

	startRunner(t, cfgB, sinkB)
	eventually(t, 10*time.Second, "B took nothing over from A", func() bool { return len(sinkB.appliedCopy()) > 0 })
	stop()

	ends := make([]int64, partitions)
	for p := range int32(partitions) {
		ends[p] = k.endOffset(t, testTopic, p)
	}
	eventually(t, 5*time.Second, "the group did not commit every partition to its end", func() bool {
		for p := range int32(partitions) {
			if k.committed(t, testGroup, testTopic, p) != ends[p] {
				return false
			}
		}
		return true
	})
	a, b := sinkA.appliedCopy(), sinkB.appliedCopy()
	for p := range int32(partitions) {
		for o := range ends[p] {
			if n := a[tp{p, o}] + b[tp{p, o}]; n != 1 {
				t.Errorf("partition %d offset %d applied %d times (A %d, B %d), want once", p, o, n, a[tp{p, o}], b[tp{p, o}])
			}
		}
	}
	given, late := handOff.report()
	for _, l := range late {
		t.Error(l)
	}
	// The scenario itself: A gave partitions up midway (it applied their start, B the
	// rest) while a batch of A waited on the rebalance.
	if len(given) == 0 {
		t.Errorf("A gave no partition up")
	}
	for _, p := range given {
		if a[tp{p, 0}] == 0 || b[tp{p, ends[p] - 1}] == 0 {
			t.Errorf("partition %d did not go from A to B midway", p)
		}
	}
	if !waitingSeen.Load() {
		t.Errorf("no batch of A was in flight while the rebalance waited; the drain was not exercised")
	}
	t.Logf("A applied %d records, B %d; A gave up partitions %v", len(a), len(b), given)
}

// TestGroupMovedOn: a commit refused because this member no longer owns the generation
// it polled in is given up (the new owner redelivers); every other commit failure is
// retried. Wrapped errors count the same.
func TestGroupMovedOn(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{kerr.IllegalGeneration, true},
		{kerr.UnknownMemberID, true},
		{kerr.RebalanceInProgress, true},
		{kerr.FencedInstanceID, true},
		{kerr.StaleMemberEpoch, true},
		{fmt.Errorf("commit: %w", kerr.IllegalGeneration), true},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", kerr.StaleMemberEpoch)), true},
		{errors.Join(errors.New("other"), kerr.UnknownMemberID), true},
		{kerr.CoordinatorNotAvailable, false},
		{kerr.NotCoordinator, false},
		{kerr.RequestTimedOut, false},
		{kerr.GroupAuthorizationFailed, false},
		{context.DeadlineExceeded, false},
		{errors.New("illegal generation"), false}, // only the typed error counts
		{fmt.Errorf("commit: %w", kerr.CoordinatorLoadInProgress), false},
		{nil, false},
	} {
		if got := groupMovedOn(tc.err); got != tc.want {
			t.Errorf("groupMovedOn(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestACommitRefusedBecauseTheGroupMovedOnIsDropped: when the broker refuses a commit
// with ILLEGAL_GENERATION, the runner neither retries it (it would fail forever) nor
// stops: it goes on with the next batch, whose commit covers the first.
func TestACommitRefusedBecauseTheGroupMovedOnIsDropped(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	commits := k.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: testGroup, Observe: true, Count: -1})
	refused := k.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: testGroup, Err: kerr.IllegalGeneration, Count: 1})
	run := startRunner(t, testConfig(k), &testSink{name: "postgres"})

	recs := validRecords(t, 6, 1)
	k.produce(t, recs[:3]...)
	eventually(t, 5*time.Second, "the first commit was not refused", func() bool { return refused.Hits() == 1 })
	k.produce(t, recs[3:]...)
	eventually(t, 5*time.Second, "the next batch was not committed", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 6
	})
	// The next batch is taken only after the first one is done with, so by now any retry
	// of the refused commit would have reached the broker.
	if n := commits.Hits(); n != 2 {
		t.Fatalf("%d commits reached the broker, want 2 (the refused one, not retried, and the next batch's)", n)
	}
	if n := counter(t, run.metrics.CommitFailures); n != 1 {
		t.Errorf("commit failures counted %v, want 1", n)
	}
	if line := readyLine(run.ready, "kafka"); line != "" {
		t.Errorf("readiness reports %q after a refused commit, want kafka healthy", line)
	}
	select {
	case <-run.done:
		t.Fatalf("Run returned %v after a refused commit, want it to keep consuming", run.err)
	default:
	}
}

// kickOut removes the runner's member from the group, as the coordinator does when a
// member's session expires, and returns the removed member id.
func kickOut(t *testing.T, k *testKafka, run *running) string {
	t.Helper()
	memberID, _ := run.r.client.GroupMetadata()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = testGroup
	member := kmsg.NewLeaveGroupRequestMember()
	member.MemberID = memberID
	req.Members = append(req.Members, member)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, k.client)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) == 1 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("remove member %s from the group: %v", memberID, err)
	}
	return memberID
}

// blockFirstApply returns a sink whose first Apply waits for release, and a channel
// that receives when that Apply started.
func blockFirstApply(release <-chan struct{}) (*testSink, <-chan struct{}) {
	entered := make(chan struct{}, 1)
	var calls atomic.Int32
	return &testSink{name: "postgres", apply: func(context.Context, []Message) error {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return nil
	}}, entered
}

// TestAMemberRemovedFromTheGroupMidBatchDropsItsCommitAndKeepsConsuming: a member
// removed from the group while its sink works on a batch (as when its session expired)
// gets its commit refused by the broker. The runner drops that commit without retrying
// it, rejoins, and keeps consuming: the next batch is committed.
func TestAMemberRemovedFromTheGroupMidBatchDropsItsCommitAndKeepsConsuming(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	commits := k.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: testGroup, Observe: true, Count: -1})
	release := make(chan struct{})
	sink, entered := blockFirstApply(release)
	run := startRunner(t, testConfig(k), sink)
	recs := validRecords(t, 6, 1)
	k.produce(t, recs[:3]...)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink was not called")
	}
	kicked := kickOut(t, k, run)
	close(release)

	eventually(t, 5*time.Second, "the refused commit was not sent", func() bool { return commits.Hits() >= 1 })
	eventually(t, 5*time.Second, "the runner did not rejoin", func() bool {
		id, _ := run.r.client.GroupMetadata()
		return id != "" && id != kicked
	})
	if got := k.committed(t, testGroup, testTopic, 0); got != -1 {
		t.Fatalf("committed offset %d: a removed member's commit was accepted", got)
	}
	k.produce(t, recs[3:]...)
	eventually(t, 5*time.Second, "the next batch was not committed", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 6
	})
	if n := commits.Hits(); n != 2 {
		t.Fatalf("%d commits reached the broker, want 2 (the refused one, not retried, and the next batch's)", n)
	}
	select {
	case <-run.done:
		t.Fatalf("Run returned %v after a refused commit, want it to keep consuming", run.err)
	default:
	}
}

// TestABatchWhoseCommitWasRefusedIsCommittedWhenNothingFollows: after a refused commit
// the group's committed offset must still reach the end of the partition, even when no
// further record arrives to carry a later commit; otherwise the group shows lag for
// records that were applied, forever (and the lag keeps a replica running).
func TestABatchWhoseCommitWasRefusedIsCommittedWhenNothingFollows(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	release := make(chan struct{})
	sink, entered := blockFirstApply(release)
	run := startRunner(t, testConfig(k), sink)
	k.produce(t, validRecords(t, 3, 1)...)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink was not called")
	}
	kickOut(t, k, run)
	close(release)
	eventually(t, 8*time.Second, "the batch whose commit was refused was never committed", func() bool {
		return k.committed(t, testGroup, testTopic, 0) == 3
	})
}

// TestStoppingFinishesAndCommitsTheBatchInFlight: cancelling Run's context while the
// sink works on a batch lets the batch finish (with a context that is not cancelled)
// and commit within the shutdown timeout, and Run returns nil, so a rolling restart
// redelivers nothing.
func TestStoppingFinishesAndCommitsTheBatchInFlight(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var ctxErr atomic.Value
	sink := &testSink{name: "postgres", apply: func(ctx context.Context, _ []Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return ctx.Err()
	}}
	run := startRunner(t, testConfig(k), sink)
	k.produce(t, validRecords(t, 5, 1)...)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink was not called")
	}

	run.cancel()
	select {
	case <-run.done:
		t.Fatalf("Run returned %v while a batch was in flight", run.err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := run.wait(t, 5*time.Second); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if got := ctxErr.Load(); got != "<nil>" {
		t.Errorf("the sink's context was %v while it finished the batch, want not cancelled", got)
	}
	if got := k.committed(t, testGroup, testTopic, 0); got != 5 {
		t.Fatalf("committed offset %d after stopping, want 5 (the batch in flight)", got)
	}
}

// TestStoppingGivesUpABatchThatOutlastsTheShutdownTimeout: a batch still unfinished
// when the shutdown timeout passes is abandoned uncommitted (it is redelivered), and Run
// says so with an error rather than hanging.
func TestStoppingGivesUpABatchThatOutlastsTheShutdownTimeout(t *testing.T) {
	k := newKafka(t, 1, testTopic, testDLQ)
	entered := make(chan struct{}, 1)
	sink := &testSink{name: "postgres", apply: func(ctx context.Context, _ []Message) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	cfg := testConfig(k)
	cfg.ShutdownTimeout = 300 * time.Millisecond
	run := startRunner(t, cfg, sink)
	k.produce(t, validRecords(t, 5, 1)...)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink was not called")
	}
	start := time.Now()
	run.cancel()
	err := run.wait(t, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "not finished before the shutdown timeout") {
		t.Fatalf("Run returned %v, want the unfinished-batch error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %s to give up, want about the shutdown timeout (%s)", d, cfg.ShutdownTimeout)
	}
	if got := k.committed(t, testGroup, testTopic, 0); got != -1 {
		t.Fatalf("committed offset %d for an abandoned batch, want none", got)
	}
}
