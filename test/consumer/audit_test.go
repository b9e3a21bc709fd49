package consumer_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Issue tests 1 and 3: every produced event becomes exactly one row, and a replay of the
// whole topic with a new group adds nothing.
func TestAuditEveryEventOnceAndReplay(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 1, 10_000)
	s.produce(t, envs)

	group := infra.NewGroup(t)
	c := s.startConsumer(t, "audit-1", group)
	s.waitRows(t, len(envs), 2*time.Minute, c)
	s.assertExactly(t, envs)
	assertRowMatchesEnvelope(t, s, envs[len(envs)/2])
	c.stop()
	// After SIGTERM everything processed is committed: the group has no lag.
	if lag := infra.GroupLag(t, group, s.topic); lag != 0 {
		t.Fatalf("group %s has a lag of %d after a clean stop, want 0", group, lag)
	}

	replay := s.startConsumer(t, "audit-replay", infra.NewGroup(t))
	replay.waitMetric("atlas_consumer_records_consumed_total", float64(len(envs)), 2*time.Minute)
	replay.waitMetric("atlas_consumer_events_duplicate_total", float64(len(envs)), 30*time.Second)
	if n, _ := replay.metric("atlas_consumer_events_inserted_total"); n != 0 {
		t.Fatalf("the replay inserted %v rows", n)
	}
	s.assertExactly(t, envs)
	replay.stop()
}

// groupLag is the group's total lag on topic, from its committed offsets.
// assertRowMatchesEnvelope checks one row's typed columns against the envelope.
func assertRowMatchesEnvelope(t *testing.T, s *setup, env *event.Envelope) {
	t.Helper()
	var (
		eventType, entityType, topic string
		version                      int
		occurred                     time.Time
		trace                        *string
		raw                          []byte
		offset                       int64
	)
	err := s.pool.QueryRow(context.Background(), `SELECT event_type, version, occurred_at, trace_id, entity_type, envelope, kafka_topic, kafka_offset
		FROM audit_events WHERE event_id = $1`, env.EventID).Scan(&eventType, &version, &occurred, &trace, &entityType, &raw, &topic, &offset)
	if err != nil {
		t.Fatalf("read event %s: %v", env.EventID, err)
	}
	if eventType != string(env.EventType) || version != env.Version || !occurred.Equal(env.OccurredAt) ||
		entityType != string(env.Entity.Type) || topic != s.topic || offset < 0 {
		t.Fatalf("row differs from the envelope: %s v%d %s %s %s@%d", eventType, version, occurred, entityType, topic, offset)
	}
	if (trace == nil) != (env.TraceID == nil) || (trace != nil && *trace != *env.TraceID) {
		t.Fatalf("trace_id %v, want %v", trace, env.TraceID)
	}
	decoded, err := event.Decode(raw)
	if err != nil || decoded.EventID != env.EventID {
		t.Fatalf("stored envelope does not decode to the event: %v", err)
	}
}

// Issue test 2: every event produced twice is stored once; the duplicates are counted.
func TestAuditDuplicatesAreCounted(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 2, 10_000)
	s.produce(t, envs)
	s.produce(t, envs)

	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, len(envs), 2*time.Minute, c)
	c.waitMetric("atlas_consumer_events_duplicate_total", float64(len(envs)), time.Minute)
	s.assertExactly(t, envs)
	dup, err := c.metric("atlas_consumer_events_duplicate_total")
	if err != nil || dup != float64(len(envs)) {
		t.Fatalf("duplicates metric = %v (%v), want %d", dup, err, len(envs))
	}
	ins, _ := c.metric("atlas_consumer_events_inserted_total")
	if ins != float64(len(envs)) {
		t.Fatalf("inserted metric = %v, want %d", ins, len(envs))
	}
	c.stop()
}

// Issue test 4: SIGKILL at random points during a 50,000-event run, restarted each time:
// the table ends up equal to the produced set.
func TestAuditSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 4, 50_000)
	produced := s.produceInSlices(t, envs, 1_250, 700*time.Millisecond)
	group := infra.NewGroup(t)
	c := s.startConsumer(t, "audit", group)
	rng := rand.New(rand.NewPCG(4, 4))
	kills := 0
	for kills < 5 {
		before := s.rowCount(t)
		if !c.killWhileWorking(rng, produced, group, s.topic) {
			break
		}
		kills++
		t.Logf("SIGKILL %d with about %d rows stored", kills, before)
	}
	if kills < 3 {
		t.Fatalf("only %d kills landed while the consumer worked", kills)
	}
	<-produced
	s.waitRows(t, len(envs), 3*time.Minute, c)
	s.assertExactly(t, envs)
	c.stop()
}

// Issue test 7: two consumers in one group; one leaves and rejoins mid-run.
func TestAuditGroupMemberLeavesAndRejoins(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 7, 30_000)
	group := infra.NewGroup(t)
	a := s.startConsumer(t, "audit-a", group)
	b := s.startConsumer(t, "audit-b", group)
	produced := s.produceInSlices(t, envs, 500, 250*time.Millisecond)
	// Both members work (b got partitions in the rebalance), then b leaves mid-run.
	b.waitMetric("atlas_consumer_records_consumed_total", 1, time.Minute)
	a.waitMetric("atlas_consumer_records_consumed_total", 1, time.Minute)
	b.stop()
	t.Logf("member b left with %d rows stored", s.rowCount(t))
	time.Sleep(2 * time.Second)
	b.restart()
	t.Logf("member b rejoined with %d rows stored", s.rowCount(t))
	<-produced
	s.waitRows(t, len(envs), 2*time.Minute, a, b)
	s.assertExactly(t, envs)
	n, _ := b.metric("atlas_consumer_records_consumed_total")
	t.Logf("member b consumed %v records after rejoining", n)
	a.stop()
	b.stop()
}
