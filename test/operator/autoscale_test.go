package operator_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestAutoscalingFollowsLag runs lag-driven scaling against the real broker: lag built
// up on a 4-partition topic raises the replicas at once, capped at the partition count
// (ScalingLimited says so); once the group has consumed everything, the replicas fall
// back to minReplicas only after the stabilization window.
func TestAutoscalingFollowsLag(t *testing.T) {
	t.Parallel()
	env := operatorEnv(t)
	topic := infra.NewTopic(t, 4)
	group := infra.NewGroup(t)
	ns := newNamespace(t, env)
	dsnSecret(t, env, ns, "pg", dsnValue)

	ac := auditConsumer(ns, "scaled")
	ac.Spec.Replicas = nil
	ac.Spec.Kafka = atlasv1alpha1.KafkaSpec{BootstrapServers: infra.KafkaBrokers(t), Topic: topic, GroupID: group}
	const window = 12 * time.Second
	ac.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{
		MinReplicas: ptr.To[int32](1), MaxReplicas: 10, LagPerReplica: 100,
		PollInterval:           &metav1.Duration{Duration: 5 * time.Second},
		ScaleDownStabilization: &metav1.Duration{Duration: window},
	}
	mustCreate(t, env, ac)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaled"}}
	waitReplicas(t, env, dep, 1, timeoutCreate, "Deployment at minReplicas on an empty topic")

	// 1,000 records round-robin over 4 partitions: a lag of 1,000 asks for 10 replicas.
	cl := publishRoundRobin(t, topic, 1000)
	waitReplicas(t, env, dep, 4, 30*time.Second, "scaled up to the partition count")
	eventually(t, 10*time.Second, "status reports the scale-up", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if err := wantCondition(ac, atlasv1alpha1.ConditionScalingLimited, metav1.ConditionTrue, "PartitionLimit", "capped at the topic's 4 partitions"); err != nil {
			return err
		}
		if err := wantCondition(ac, atlasv1alpha1.ConditionScalingActive, metav1.ConditionTrue, "ValidLag", "lag 1000 over 4 partitions"); err != nil {
			return err
		}
		if l := ac.Status.Lag; l == nil || l.Total != 1000 || l.Partitions != 4 || l.LaggingPartitions != 4 || l.Max != 250 || len(l.Top) != 4 {
			return fmt.Errorf("status.lag = %+v", l)
		}
		if ac.Status.DesiredReplicas != 4 || ac.Status.LastScaleTime == nil {
			return fmt.Errorf("desired %d, lastScaleTime %v", ac.Status.DesiredReplicas, ac.Status.LastScaleTime)
		}
		return nil
	})
	assertEvent(t, env, ns, "scaled", "ScaledUp", "scaled from 1 to 4 replicas: lag 1000 over 4 partitions")

	// The group consumes everything: commit the end offsets.
	commitEndOffsets(t, cl, topic, group)
	drained := time.Now()
	eventually(t, 20*time.Second, "scale-down deferred by the window", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionScalingActive, metav1.ConditionTrue, "ScaleDownStabilized", "lag 0 over 4 partitions; scale down to 1 deferred")
	})
	if err := get(t, env, dep); err != nil || *dep.Spec.Replicas != 4 {
		t.Fatalf("replicas fell before the stabilization window ended: %v %v", dep.Spec.Replicas, err)
	}
	waitReplicas(t, env, dep, 1, window+20*time.Second, "scaled down after the window")
	// The last recommendation of 4 came at most one poll interval before the commit.
	if elapsed := time.Since(drained); elapsed < window-5*time.Second {
		t.Errorf("scaled down %s after the lag drained; the window is %s", elapsed, window)
	}
	assertEvent(t, env, ns, "scaled", "ScaledDown", "scaled from 4 to 1 replicas")
}

// publishRoundRobin publishes n records spread evenly over the topic's partitions and
// returns the client it used.
func publishRoundRobin(t testing.TB, topic string, n int) *kgo.Client {
	t.Helper()
	cl := infra.KafkaClient(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "event %d", i)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// commitEndOffsets commits the topic's end offsets for the group, as if it had consumed
// everything: its lag drops to zero.
func commitEndOffsets(t testing.TB, cl *kgo.Client, topic, group string) {
	t.Helper()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { offsets.AddOffset(topic, o.Partition, o.Offset, -1) })
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit end offsets: %v", err)
	}
}

// TestLagUnavailableKeepsReplicas: when the brokers cannot be reached the lag is not
// taken for zero: the replicas stay, ScalingActive is False with the reason, and an
// Event says Kafka is unreachable.
func TestLagUnavailableKeepsReplicas(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ac := auditConsumer(ns, "blind")
	ac.Spec.Replicas = nil
	ac.Spec.Kafka.BootstrapServers = []string{"127.0.0.1:1"} // nothing listens there
	ac.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 6,
		PollInterval: &metav1.Duration{Duration: 5 * time.Second}}
	mustCreate(t, env, ac)
	eventually(t, 30*time.Second, "LagUnavailable", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionScalingActive, metav1.ConditionFalse, "LagUnavailable", "keeping 2 replicas: the lag could not be read")
	})
	assertEvent(t, env, ns, "blind", "KafkaUnreachable", "the lag could not be read")
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "blind"}}
	if err := get(t, env, dep); err != nil || *dep.Spec.Replicas != 2 {
		t.Fatalf("replicas %v (%v), want minReplicas 2 kept", dep.Spec.Replicas, err)
	}
	if ac.Status.Lag != nil {
		t.Errorf("status.lag = %+v although it could not be read", ac.Status.Lag)
	}
}

// The brokers of 20 autoscaled AtlasConsumers accept connections and never answer (each
// lag read waits out the operator's 3 s lag timeout), and they are polled every 5 s.
// A spec change to another AtlasConsumer still reaches its Deployment within a second:
// lag is read by a poller per consumer, off the reconcile workers (4 here), and Reconcile
// only talks to the API server.
func TestLagReadsNeverHoldReconciles(t *testing.T) {
	env, ns := consumerNamespace(t)
	silent := silentBroker(t)
	for i := range 20 {
		ac := auditConsumer(ns, fmt.Sprintf("stalled-%02d", i))
		ac.Spec.Replicas = nil
		ac.Spec.Kafka.BootstrapServers = []string{silent}
		ac.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: 4,
			PollInterval: &metav1.Duration{Duration: 5 * time.Second}}
		mustCreate(t, env, ac)
	}
	probe := auditConsumer(ns, "probe")
	mustCreate(t, env, probe)
	dep := waitDeployment(t, env, ns, "probe")
	for i := range 20 {
		waitDeployment(t, env, ns, fmt.Sprintf("stalled-%02d", i))
	}
	time.Sleep(6 * time.Second) // every stalled consumer's lag has been read, and is read again, by now

	start := time.Now()
	update(t, env, probe, func(ac *atlasv1alpha1.AtlasConsumer) { ac.Spec.Replicas = ptr.To[int32](3) })
	eventually(t, 30*time.Second, "the probe's Deployment follows its spec", func() error {
		if err := get(t, env, dep); err != nil {
			return err
		}
		if *dep.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d", *dep.Spec.Replicas)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("a spec change reached its Deployment in %s while 20 consumers' brokers did not answer", took.Round(time.Millisecond))
	if took > time.Second {
		t.Fatalf("a spec change took %s to reach its Deployment, want under 1s: lag reads held the reconcile workers", took.Round(time.Millisecond))
	}
	ac := &atlasv1alpha1.AtlasConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stalled-00"}}
	eventually(t, 30*time.Second, "the stalled consumers say why they keep their replicas", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionScalingActive, metav1.ConditionFalse, "LagUnavailable", "the lag could not be read")
	})
}

// silentBroker is an address that accepts connections and never answers, as a broker
// behind a dropping network does; it closes when the test ends.
func silentBroker(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
