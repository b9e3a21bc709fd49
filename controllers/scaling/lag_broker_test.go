package scaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/controllers/scaling"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Against the real broker: lag builds up, the desired replicas rise (capped at the
// partitions), the group drains, and after the stabilization window they fall.
func TestLagDrivenScalingOnRealBroker(t *testing.T) {
	ctx := context.Background()
	topic := infra.NewTopic(t, 4)
	group := infra.NewGroup(t)
	cl := infra.KafkaClient(t, kgo.DefaultProduceTopic(topic))
	adm := kadm.NewClient(cl)
	var recs []*kgo.Record
	for i := 0; i < 4000; i++ {
		recs = append(recs, &kgo.Record{Value: []byte("x"), Partition: int32(i % 4)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	policy := scaling.Policy{MinReplicas: 1, MaxReplicas: 10, LagPerReplica: 500, ScaleDownStabilization: 5 * time.Minute}
	lag := readLagSoon(t, adm, group, topic, true)
	if lag.Total != 4000 || len(lag.Partitions) != 4 {
		t.Fatalf("a new group starting at the earliest offset: lag %d over %d partitions, want 4000 over 4", lag.Total, len(lag.Partitions))
	}
	if latest := readLagSoon(t, adm, group, topic, false); latest.Total != 0 {
		t.Fatalf("a new group starting at the latest offset: lag %d, want 0", latest.Total)
	}
	now := time.Now()
	up := scaling.Decide(scaling.Input{Now: now, Current: 1, Policy: policy, Lag: lag})
	if up.Desired != 4 || !up.ScalingLimited.Status || up.ScalingLimited.Reason != scaling.ReasonPartitionLimit {
		t.Fatalf("lag 4000 at 500 per replica: desired %d, limited %+v; want 4, capped by the 4 partitions", up.Desired, up.ScalingLimited)
	}
	t.Logf("lag %d: desired %d (%s)", lag.Total, up.Desired, up.ScalingLimited.Message)

	// The group drains: it commits the end offsets.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CommitAllOffsets(ctx, group, ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	drained, err := scaling.ReadLag(ctx, adm, group, topic, true)
	if err != nil || drained.Total != 0 {
		t.Fatalf("after the commit: lag %d (%v), want 0", drained.Total, err)
	}
	held := scaling.Decide(scaling.Input{Now: now.Add(time.Minute), Current: 4, Policy: policy, Lag: drained, Previous: &lag, History: up.History})
	if held.Desired != 4 || held.ScalingActive.Reason != scaling.ReasonScaleDownDeferred {
		t.Fatalf("one minute after draining: desired %d (%s), want 4 held by the window", held.Desired, held.ScalingActive.Message)
	}
	down := scaling.Decide(scaling.Input{Now: now.Add(6 * time.Minute), Current: 4, Policy: policy, Lag: drained, Previous: &drained, History: held.History})
	if down.Desired != 1 {
		t.Fatalf("after the window: desired %d, want 1", down.Desired)
	}

	// A failed read is an error, never zero lag.
	if _, err := scaling.ReadLag(ctx, adm, group, "no.such.topic."+group, true); err == nil {
		t.Fatal("reading the lag of a missing topic succeeded")
	}
}

// readLagSoon reads the lag, retrying for a while: on a freshly started broker the group
// coordinator (the __consumer_offsets topic) may not be available yet. The operator
// meets the same transient error by keeping its replicas until the next poll.
func readLagSoon(t *testing.T, adm *kadm.Client, group, topic string, earliest bool) scaling.Lag {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		lag, err := scaling.ReadLag(context.Background(), adm, group, topic, earliest)
		if err == nil {
			return lag
		}
		if time.Now().After(deadline) {
			t.Fatalf("read the lag of %s: %v", group, err)
		}
		t.Logf("read the lag (retrying): %v", err)
		time.Sleep(500 * time.Millisecond)
	}
}

// KEDA's stuck-partition scenario against the real broker, at minReplicas 0 with
// excludeStuckPartitions: partition 0's commit stops moving while records keep arriving.
// It is left out of the scaling lag, but the consumer never goes (or stays) at zero
// replicas while its records wait, because at zero nothing could ever move that commit.
func TestStuckPartitionNeverStrandsAtZeroOnRealBroker(t *testing.T) {
	ctx := context.Background()
	topic := infra.NewTopic(t, 2)
	group := infra.NewGroup(t)
	cl := infra.KafkaClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	produce := func(n int) {
		t.Helper()
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Value: []byte("x"), Partition: int32(i % 2)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(100)
	// The group commits partition 0 at 10 (and then never again) and partition 1 at its end.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	commit := kadm.Offsets{}
	commit.AddOffset(topic, 0, 10, -1)
	end1, _ := ends.Lookup(topic, 1)
	commit.AddOffset(topic, 1, end1.Offset, -1)
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		t.Fatal(err)
	}

	policy := scaling.Policy{MinReplicas: 0, MaxReplicas: 2, LagPerReplica: 1000, ExcludeStuckPartitions: true}
	replicas := int32(1)
	prev := readLagSoon(t, adm, group, topic, true)
	for round := 1; round <= 4; round++ {
		produce(20) // records keep arriving; partition 0's commit does not move
		lag := readLagSoon(t, adm, group, topic, true)
		d := scaling.Decide(scaling.Input{Now: time.Now(), Current: replicas, Policy: policy, Lag: lag, Previous: &prev})
		t.Logf("round %d: lag %d (partition 0: %d), excluded %v, desired %d: %s", round, lag.Total, lag.Partitions[0].Lag, d.Excluded, d.Desired, d.ScalingLimited.Message)
		if d.Desired == 0 {
			t.Fatalf("round %d: desired 0 replicas while %d records wait on partition 0, whose commit nothing at zero replicas could move", round, lag.Partitions[0].Lag)
		}
		replicas, prev = d.Desired, lag
	}
}
