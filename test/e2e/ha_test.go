package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// The operator's leader election Lease (internal/cli: --leader-election-id), in its namespace.
const leaseName = "atlas-operator.events.atlas.io"

// leader returns the identity holding the operator's Lease ("" when none does) and the
// name of its pod. An identity is "<pod name>_<uuid>": a process restarted in the same pod
// is another identity.
func (c *cluster) leader(t testing.TB) (identity, pod string) {
	t.Helper()
	var lease coordinationv1.Lease
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, &lease); err != nil {
		return "", ""
	}
	if lease.Spec.HolderIdentity == nil {
		return "", ""
	}
	pod, _, _ = strings.Cut(*lease.Spec.HolderIdentity, "_")
	return *lease.Spec.HolderIdentity, pod
}

// scaleEvents counts the AtlasConsumer's ScaledUp/ScaledDown Events by reason and change
// ("scaled from 1 to 6 replicas"; the reason after it names a lag, which differs between
// two records of one change), a repeated Event counting as often as it was recorded.
func (s *system) scaleEvents(t testing.TB, name string) map[string]int {
	t.Helper()
	var list corev1.EventList
	if err := s.client.List(context.Background(), &list, client.InNamespace(s.ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind != "AtlasConsumer" || e.InvolvedObject.Name != name || (e.Reason != "ScaledUp" && e.Reason != "ScaledDown") {
			continue
		}
		n := max(1, int(e.Count))
		if e.Series != nil {
			n = max(n, int(e.Series.Count))
		}
		// "scaled from 1 to 6 replicas: <why>": a change made twice has the same head
		what, _, _ := strings.Cut(e.Message, ":")
		out[e.Reason+": "+what] += n
	}
	return out
}

// Two operator replicas, one leader. The leader's process is killed (SIGKILL, found
// through its container's cgroup) while the indexer's scale-down waits for its
// stabilization window: another process (the other replica, or the killed one restarted
// by the kubelet) takes the Lease within the lease duration (15 s) and the candidates'
// retry periods, honours the rest of the window (status.scaleDownPeaks) and then scales
// down once; reconciling goes on (kubectl scale reaches the Deployment);
// no ScaledUp or ScaledDown Event is recorded twice; and once settled, the new leader
// writes nothing to an idle consumer or its Deployment.
func TestOperatorLeaderHandOver(t *testing.T) {
	s := newSystem(t)
	c := s.cluster
	c.kubectl(t, nil, "-n", operatorNamespace, "scale", "deploy/"+operatorDeployment, "--replicas=2")
	t.Cleanup(func() {
		c.kubectl(t, nil, "-n", operatorNamespace, "scale", "deploy/"+operatorDeployment, "--replicas=1")
		c.kubectl(t, nil, "-n", operatorNamespace, "rollout", "status", "deploy/"+operatorDeployment, "--timeout=2m")
	})
	c.kubectl(t, nil, "-n", operatorNamespace, "rollout", "status", "deploy/"+operatorDeployment, "--timeout=2m")
	var first, firstPod string
	eventually(t, 30*time.Second, "a leader", func() error {
		if first, firstPod = c.leader(t); first == "" {
			return fmt.Errorf("no holder of Lease %s", leaseName)
		}
		return nil
	})

	const window = 60 * time.Second // longer than a hand-over, so the new leader must honour the rest
	s.applySample(t, "audit", nil)
	s.applySample(t, "indexer", map[string]any{
		"batch.size":                         int64(10),
		"autoscaling.lagPerReplica":          int64(1_000),
		"autoscaling.maxReplicas":            int64(10),
		"autoscaling.pollInterval":           "5s",
		"autoscaling.scaleDownStabilization": window.String(),
	})
	s.waitRunning(t, "audit", 2, 2*time.Minute)
	s.waitRunning(t, "indexer", 1, 2*time.Minute)
	s.produce(t, 20_000, 0)
	eventually(t, time.Minute, "the indexer scaled up to the partition count", func() error {
		if d := s.consumer(t, "indexer").Status.DesiredReplicas; d != partitions {
			return fmt.Errorf("desired %d", d)
		}
		return nil
	})
	s.waitIndexed(t, 3*time.Minute)
	var peak time.Time
	var held int32
	eventually(t, time.Minute, "the scale-down deferred by the window", func() error {
		ac := s.consumer(t, "indexer")
		active := meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionScalingActive)
		if active == nil || active.Reason != "ScaleDownStabilized" || len(ac.Status.ScaleDownPeaks) == 0 {
			return fmt.Errorf("ScalingActive %+v, peaks %+v", active, ac.Status.ScaleDownPeaks)
		}
		peak, held = ac.Status.ScaleDownPeaks[0].Time.Time, ac.Status.ScaleDownPeaks[0].Replicas
		return nil
	})

	// SIGKILL the leader: it cannot release the Lease, which another process takes once it
	// has expired: leaseDurationSeconds after a candidate saw the last renewal, which it
	// looks at every retry period (2 s, with up to 20% jitter): at most the lease duration
	// plus two retry periods (4.8 s) after that renewal, and the API's latency.
	var lease coordinationv1.Lease
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, &lease); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: firstPod}, &pod); err != nil {
		t.Fatalf("the leader pod %s: %v", firstPod, err)
	}
	pids := containerPIDs(t, &pod)
	if len(pids) == 0 {
		t.Fatalf("no process found for the leader pod %s", firstPod)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
	}
	killed := time.Now()
	// The other replica, or the killed one restarted in its pod by the kubelet: whichever
	// takes the Lease first once it has expired.
	var next string
	eventually(t, time.Minute, "another operator process leads", func() error {
		if next, _ = c.leader(t); next == "" || next == first {
			return fmt.Errorf("the Lease is held by %q", next)
		}
		return nil
	})
	handover := time.Since(killed)
	lastRenewal := lease.Spec.RenewTime.Time
	if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, &lease); err != nil {
		t.Fatal(err)
	}
	leaseDuration := time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	sinceRenewal := lease.Spec.AcquireTime.Sub(lastRenewal)
	t.Logf("killed the leader %s; %s took over %s later, %s after the last renewal (lease duration %s); the window ends %s after that",
		first, next, handover.Round(100*time.Millisecond), sinceRenewal.Round(100*time.Millisecond), leaseDuration,
		time.Until(peak.Add(window)).Round(100*time.Millisecond))
	if sinceRenewal > leaseDuration+6*time.Second {
		t.Errorf("the Lease was taken %s after its last renewal: beyond the lease duration %s and two retry periods", sinceRenewal, leaseDuration)
	}
	if time.Until(peak.Add(window)) < 10*time.Second {
		t.Fatalf("the window ended before the new leader could be seen honouring it: make it longer")
	}

	dep := &appsv1.Deployment{}
	for time.Until(peak.Add(window)) > 2*time.Second {
		if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: "indexer"}, dep); err != nil || *dep.Spec.Replicas != held {
			t.Fatalf("the indexer has %s replicas (%v) %s before its window ended", ptrString(dep.Spec.Replicas), err, time.Until(peak.Add(window)).Round(100*time.Millisecond))
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.waitRunning(t, "indexer", 1, time.Minute)

	c.kubectl(t, nil, "-n", s.ns, "scale", "ac/audit", "--replicas=3")
	s.waitRunning(t, "audit", 3, 2*time.Minute)

	for what, n := range s.scaleEvents(t, "indexer") {
		t.Logf("%s (x%d)", what, n)
		if n > 1 {
			t.Errorf("recorded %d times: %s", n, what)
		}
	}

	// Idle: nothing changes, so nothing is written.
	time.Sleep(3 * time.Second)
	acBefore, depBefore := s.consumer(t, "audit").ResourceVersion, s.deployment(t, "audit").ResourceVersion
	time.Sleep(20 * time.Second)
	if ac, d := s.consumer(t, "audit"), s.deployment(t, "audit"); ac.ResourceVersion != acBefore || d.ResourceVersion != depBefore {
		t.Errorf("the idle audit consumer was written after the hand-over: AtlasConsumer %s -> %s, Deployment %s -> %s (status %+v)",
			acBefore, ac.ResourceVersion, depBefore, d.ResourceVersion, ac.Status)
	}
}

// deployment returns the consumer's Deployment.
func (s *system) deployment(t testing.TB, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, &d); err != nil {
		t.Fatalf("get Deployment %s: %v", name, err)
	}
	return &d
}
