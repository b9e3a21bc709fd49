package operator_test

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// A new leader honours the scale-down stabilization window of the old one. The operator
// (the real `atlas manager` with --leader-elect, on an API server of its own) scales an
// AtlasConsumer up on lag and is stopped at steady state; the lag drains while no leader
// runs. The second leader counts the latest recommendation (status.recommendedReplicas)
// as made when it took over, so it keeps the replicas a whole window, then it is stopped
// in the middle of that window; the third keeps them until the window has passed since
// the last recommendation of the higher count (status.scaleDownPeaks), then scales down.
// A leader that kept the window in memory only would scale down at its first decision.
func TestANewLeaderHonoursTheStabilizationWindow(t *testing.T) {
	t.Parallel()
	env, err := kube.StartEnv(infra.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	for _, ns := range []string{"atlas-system", "consumers"} {
		mustCreate(t, env, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	dsnSecret(t, env, "consumers", "pg", dsnValue)
	topic, group := infra.NewTopic(t, 4), infra.NewGroup(t)
	ac := auditConsumer("consumers", "scaled")
	ac.Spec.Replicas = nil
	ac.Spec.Kafka = atlasv1alpha1.KafkaSpec{BootstrapServers: infra.KafkaBrokers(t), Topic: topic, GroupID: group}
	const window = 50 * time.Second
	ac.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{
		MinReplicas: ptr.To[int32](1), MaxReplicas: 10, LagPerReplica: 100,
		PollInterval:           &metav1.Duration{Duration: 5 * time.Second},
		ScaleDownStabilization: &metav1.Duration{Duration: window},
	}
	mustCreate(t, env, ac)
	leader := func() []string {
		return []string{"--leader-elect", "--leader-election-namespace", "atlas-system", "--metrics-bind-address", "0",
			"--health-probe-bind-address", "0", "--log-level", "warn"}
	}
	first := startManagerProcess(t, env, leader()...)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "consumers", Name: "scaled"}}
	waitReplicas(t, env, dep, 1, timeoutCreate, "Deployment at minReplicas on an empty topic")

	cl := publishRoundRobin(t, topic, 400)
	waitReplicas(t, env, dep, 4, 30*time.Second, "scaled up on a lag of 400")

	eventually(t, 20*time.Second, "a steady recommendation of 4 in the status", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if r := ac.Status.RecommendedReplicas; r == nil || *r != 4 || len(ac.Status.ScaleDownPeaks) != 0 {
			return fmt.Errorf("recommended %v, peaks %+v", r, ac.Status.ScaleDownPeaks)
		}
		return nil
	})

	// The first leader goes (it releases its Lease on the way out); the lag drains before
	// the next one runs.
	stopProcess(first)
	commitEndOffsets(t, cl, topic, group)
	second := startManagerProcess(t, env, leader()...)
	var peak time.Time
	eventually(t, 30*time.Second, "the second leader defers the scale-down", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if err := wantCondition(ac, atlasv1alpha1.ConditionScalingActive, metav1.ConditionTrue, "ScaleDownStabilized", "scale down to 1 deferred"); err != nil {
			return err
		}
		if p := ac.Status.ScaleDownPeaks; len(p) != 1 || p[0].Replicas != 4 {
			return fmt.Errorf("status.scaleDownPeaks %+v, want one of 4 replicas", p)
		}
		peak = ac.Status.ScaleDownPeaks[0].Time.Time
		return nil
	})
	// Half the window under the second leader, the rest under a third.
	deadline := time.Now().Add(time.Until(peak.Add(window)) / 2)
	for time.Now().Before(deadline) {
		if err := get(t, env, dep); err != nil || *dep.Spec.Replicas != 4 {
			t.Fatalf("the second leader scaled to %d (%v) inside the window", ptr.Deref(dep.Spec.Replicas, -1), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	stopProcess(second)
	handover := time.Now()
	startManagerProcess(t, env, leader()...)
	// (A steady lag writes no status, so the Lease tells when the third leader leads; it
	// polls at once and then every pollInterval.)
	eventually(t, 30*time.Second, "the third leader holds the Lease", func() error {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "atlas-system", Name: "atlas-operator.events.atlas.io"}}
		if err := get(t, env, lease); err != nil {
			return err
		}
		if lease.Spec.AcquireTime == nil || lease.Spec.AcquireTime.Time.Before(handover.Truncate(time.Second)) {
			return fmt.Errorf("lease acquired %v by %s", lease.Spec.AcquireTime, ptr.Deref(lease.Spec.HolderIdentity, ""))
		}
		return nil
	})
	time.Sleep(ac.Spec.Autoscaling.PollInterval.Duration + time.Second)
	t.Logf("the third leader has led and polled for a poll interval, %s after the hand-over; the window ends %s after it",
		time.Since(handover).Round(time.Millisecond), time.Until(peak.Add(window)).Round(time.Millisecond))
	if left := time.Until(peak.Add(window)); left < 8*time.Second {
		t.Fatalf("only %s of the window left to watch under the third leader: make it longer", left)
	}
	for time.Until(peak.Add(window)) > 2*time.Second {
		if err := get(t, env, dep); err != nil || *dep.Spec.Replicas != 4 {
			t.Fatalf("the third leader scaled to %d (%v) %s before the window ended", ptr.Deref(dep.Spec.Replicas, -1), err, time.Until(peak.Add(window)).Round(time.Millisecond))
		}
		time.Sleep(250 * time.Millisecond)
	}
	waitReplicas(t, env, dep, 1, 20*time.Second, "scaled down once the window passed")
	// (the status is written after the Deployment, in the same reconcile)
	eventually(t, 10*time.Second, "no peaks left in the status", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if len(ac.Status.ScaleDownPeaks) != 0 {
			return fmt.Errorf("status.scaleDownPeaks %+v", ac.Status.ScaleDownPeaks)
		}
		return nil
	})
}
