package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// A burst of lag on the indexer: the operator scales it up to one pod per partition (its
// maxReplicas and the lag would allow more), the pods drain the lag, and after the
// stabilization window the operator scales it back down; `kubectl get ac` shows both.
func TestIndexerScalesUpOnLagAndDownAfterTheWindow(t *testing.T) {
	s := newSystem(t)
	const window = 20 * time.Second
	// Small batches make one pod slower than the producer, so a burst leaves lag behind
	// that more pods (one per partition at most) work off faster.
	s.applySample(t, "indexer", map[string]any{
		"batch.size":                         int64(10),
		"autoscaling.lagPerReplica":          int64(1_000),
		"autoscaling.maxReplicas":            int64(10),
		"autoscaling.pollInterval":           "5s",
		"autoscaling.scaleDownStabilization": window.String(),
	})
	s.waitRunning(t, "indexer", 1, 2*time.Minute)

	s.produce(t, 20_000, 0)
	// Lag above 5 x lagPerReplica calls for six pods (the partition count); the last such
	// measurement starts the window the scale-down must wait.
	const sixPodsLag = 5 * 1_000
	var lastHigh time.Time
	noteLag := func(st *atlasv1alpha1.AtlasConsumerStatus) {
		if st.Lag != nil && st.Lag.Total > sixPodsLag && st.Lag.MeasuredAt.After(lastHigh) {
			lastHigh = st.Lag.MeasuredAt.Time
		}
	}
	eventually(t, time.Minute, "scaled up to the partition count", func() error {
		ac := s.consumer(t, "indexer")
		noteLag(&ac.Status)
		if ac.Status.DesiredReplicas != partitions {
			return fmt.Errorf("desired %d, lag %v", ac.Status.DesiredReplicas, lagTotal(ac))
		}
		limited := meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionScalingLimited)
		if limited == nil || limited.Status != "True" || limited.Reason != "PartitionLimit" {
			return fmt.Errorf("ScalingLimited: %+v", limited)
		}
		return nil
	})
	row := s.getAC(t, "indexer")
	if row["DESIRED"] != fmt.Sprint(partitions) {
		t.Errorf("kubectl get ac while scaled up: %v, want DESIRED %d", row, partitions)
	}
	t.Logf("kubectl get ac (scaled up): %v", row)

	// Watch the status until the indexer is back at one pod.
	var firstDown time.Time
	sixReady := false
	eventually(t, 3*time.Minute, "back at one pod", func() error {
		ac := s.consumer(t, "indexer")
		if firstDown.IsZero() {
			noteLag(&ac.Status)
		}
		sixReady = sixReady || ac.Status.ReadyReplicas == partitions
		if firstDown.IsZero() && ac.Status.DesiredReplicas < partitions {
			firstDown = time.Now()
		}
		if ac.Status.DesiredReplicas != 1 || ac.Status.ReadyReplicas != 1 {
			return fmt.Errorf("desired %d, ready %d, lag %v", ac.Status.DesiredReplicas, ac.Status.ReadyReplicas, lagTotal(ac))
		}
		return nil
	})
	if !sixReady {
		t.Errorf("never %d ready pods", partitions)
	}
	if lastHigh.IsZero() {
		t.Fatalf("no lag measurement above %d was seen in the status", sixPodsLag)
	}
	if held := firstDown.Sub(lastHigh); held < window-time.Second {
		t.Errorf("the first scale-down came %s after the last lag that called for %d pods, within the %s stabilization window",
			held.Round(100*time.Millisecond), partitions, window)
	} else {
		t.Logf("the first scale-down came %s after the last lag that called for %d pods (window %s)", held.Round(100*time.Millisecond), partitions, window)
	}
	s.waitIndexed(t, time.Minute)
	s.waitCommitted(t, "indexer")
	row = s.getAC(t, "indexer")
	if row["DESIRED"] != "1" || row["READY"] != "1" || row["LAG"] != "0" {
		t.Errorf("kubectl get ac after the window: %v, want DESIRED 1, READY 1, LAG 0", row)
	}
	t.Logf("kubectl get ac (after the window): %v", row)
	for _, reason := range []string{"ScaledUp", "ScaledDown"} {
		if !s.hasEvent(t, "indexer", reason) {
			t.Errorf("no %s Event on the AtlasConsumer", reason)
		}
	}
	s.waitRunning(t, "indexer", 1, time.Minute)
}

// `kubectl scale ac/audit --replicas=3` runs three pods; `suspend: true` scales to zero
// (the group keeps its offsets and lag builds); resuming brings the three pods back and
// they consume what was published meanwhile.
func TestScaleAndSuspendTheAuditConsumer(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.applySample(t, "audit", nil)
	s.waitRunning(t, "audit", 2, 2*time.Minute)

	s.kubectl(t, nil, "-n", s.ns, "scale", "ac/audit", "--replicas=3")
	s.waitRunning(t, "audit", 3, 2*time.Minute)
	if got := s.kubectl(t, nil, "-n", s.ns, "get", "ac", "audit", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Errorf("spec.replicas after kubectl scale: %q", got)
	}
	if row := s.getAC(t, "audit"); row["DESIRED"] != "3" || row["READY"] != "3" {
		t.Errorf("kubectl get ac after scaling: %v", row)
	}
	s.produce(t, 3_000, 0)
	s.waitAudited(t, 3_000, 2*time.Minute)

	s.kubectl(t, nil, "-n", s.ns, "patch", "ac", "audit", "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	s.waitRunning(t, "audit", 0, 2*time.Minute)
	s.produce(t, 2_000, 0)
	eventually(t, 30*time.Second, "lag while suspended", func() error {
		if lag := infra.GroupLag(t, s.group("audit"), s.topic); lag != 2_000 {
			return fmt.Errorf("lag %d, want 2000", lag)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // nothing may consume meanwhile
	if rows := s.auditRows(t); rows != 3_000 {
		t.Fatalf("%d audit rows while suspended, want 3000", rows)
	}
	if !s.hasEvent(t, "audit", "ScaledDown") {
		t.Error("no ScaledDown Event for the suspension")
	}

	s.kubectl(t, nil, "-n", s.ns, "patch", "ac", "audit", "--type=merge", "-p", `{"spec":{"suspend":false}}`)
	s.waitRunning(t, "audit", 3, 2*time.Minute)
	s.waitAudited(t, 5_000, 2*time.Minute)
}

// getAC returns `kubectl get ac NAME`'s row by column header.
func (s *system) getAC(t testing.TB, name string) map[string]string {
	t.Helper()
	out := s.kubectl(t, nil, "-n", s.ns, "get", "ac", name)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get ac %s printed:\n%s", name, out)
	}
	// Columns are aligned under their headers; an empty cell is blanks.
	head, vals := lines[0], lines[1]
	var starts []int
	for i := range head {
		if head[i] != ' ' && (i == 0 || head[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	row := map[string]string{}
	for i, start := range starts {
		end := len(head)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		cell := ""
		if start < len(vals) {
			cell = vals[start:min(end, len(vals))]
		}
		if i+1 == len(starts) && start < len(vals) {
			cell = vals[start:]
		}
		row[strings.TrimSpace(head[start:end])] = strings.TrimSpace(cell)
	}
	return row
}

// hasEvent reports whether the AtlasConsumer has an Event with the reason.
func (s *system) hasEvent(t testing.TB, name, reason string) bool {
	t.Helper()
	var list corev1.EventList
	if err := s.client.List(context.Background(), &list, client.InNamespace(s.ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "AtlasConsumer" && e.InvolvedObject.Name == name && e.Reason == reason {
			return true
		}
	}
	return false
}

func lagTotal(ac *atlasv1alpha1.AtlasConsumer) any {
	if ac.Status.Lag == nil {
		return "unmeasured"
	}
	return ac.Status.Lag.Total
}
