package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Both samples applied: the operator makes their Deployments, the node runs the pods,
// and 20,000 generated events end up audited exactly once and indexed as the items table
// says.
func TestSamplesAuditAndIndexTwentyThousandEvents(t *testing.T) {
	s := newSystem(t)
	s.applySample(t, "audit", nil)
	s.applySample(t, "indexer", map[string]any{"autoscaling.pollInterval": "5s"})
	s.waitRunning(t, "audit", 2, 2*time.Minute)
	s.waitRunning(t, "indexer", 1, 2*time.Minute)
	for _, name := range []string{"audit", "indexer"} {
		for _, p := range s.pods(t, name) {
			if got := p.Spec.Containers[0].Image; got != s.image {
				t.Errorf("pod %s runs image %q, want the operator's %q", p.Name, got, s.image)
			}
			if p.Spec.NodeName == "" || p.Status.PodIP == "" {
				t.Errorf("pod %s: node %q, IP %q: not running on the node", p.Name, p.Spec.NodeName, p.Status.PodIP)
			}
		}
	}

	const n = 20_000
	s.produce(t, n, 0)
	if got := infra.Published(t, s.topic); got != n {
		t.Fatalf("%d records on the topic, want %d", got, n)
	}
	s.waitAudited(t, n, 3*time.Minute)
	s.waitIndexed(t, 3*time.Minute)
	if dead := infra.Published(t, s.topic+".dlq"); dead != 0 {
		t.Errorf("%d records went to the dead-letter topic; generated events are all valid", dead)
	}
	s.waitCommitted(t, "audit")
	s.waitCommitted(t, "indexer")
	rows := s.auditRows(t)
	t.Logf("%d events: %d audit rows, %d live items indexed", n, rows, len(infra.LiveItems(t, s.pool)))
}

// A consumer process killed mid-run (SIGKILL, no goodbye) is restarted by the kubelet in
// its pod; whatever it had read but not committed is delivered again (to it or to the
// other pod), and nothing is lost or doubled: the audit table holds a row for every record
// of the topic, no more, and the index equals the items table.
func TestKilledConsumersAreRestartedAndNothingIsLostOrDoubled(t *testing.T) {
	s := newSystem(t)
	s.applySample(t, "audit", nil)
	s.applySample(t, "indexer", map[string]any{"autoscaling": nil, "replicas": int64(2)})
	s.waitRunning(t, "audit", 2, 2*time.Minute)
	s.waitRunning(t, "indexer", 2, 2*time.Minute)

	const n = 20_000
	producer := s.produceCmd(t, n, 2_500) // ~8 s of traffic
	if err := producer.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the audit consumers at work", func() error {
		if rows := s.auditRows(t); rows < 2_000 {
			return fmt.Errorf("%d rows", rows)
		}
		return nil
	})
	victims := []corev1.Pod{s.pods(t, "audit")[0], s.pods(t, "indexer")[0]}
	for _, p := range victims {
		pids := containerPIDs(t, &p)
		if len(pids) == 0 {
			t.Fatalf("no process found for pod %s's container", p.Name)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %d (pod %s): %v", pid, p.Name, err)
			}
		}
		t.Logf("killed pod %s's consumer (pid %v)", p.Name, pids)
	}
	if rows := s.auditRows(t); rows >= n {
		t.Fatalf("all %d events were audited before the kill: not a kill mid-run", rows)
	}
	if err := producer.Wait(); err != nil {
		t.Fatalf("atlas produce: %v", err)
	}

	s.waitAudited(t, n, 3*time.Minute)
	s.waitIndexed(t, 3*time.Minute)
	for _, v := range victims {
		name := v.Labels["app.kubernetes.io/instance"]
		eventually(t, 2*time.Minute, "pod "+v.Name+" restarted in place and ready", func() error {
			for _, p := range s.pods(t, name) {
				if p.UID != v.UID {
					continue
				}
				if restarts := p.Status.ContainerStatuses[0].RestartCount; restarts < 1 || !podReady(&p) {
					return fmt.Errorf("restarts %d, ready %v", restarts, podReady(&p))
				}
				return nil
			}
			return fmt.Errorf("pod %s is gone (replaced, not restarted)", v.Name)
		})
	}
	s.waitRunning(t, "audit", 2, time.Minute)
	s.waitRunning(t, "indexer", 2, time.Minute)
}

// containerPIDs returns the processes of the pod's (first) container on this machine:
// those whose cgroup is the container's.
func containerPIDs(t testing.TB, p *corev1.Pod) []int {
	t.Helper()
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].ContainerID == "" {
		t.Fatalf("pod %s has no running container", p.Name)
	}
	id := p.Status.ContainerStatuses[0].ContainerID
	id = id[strings.Index(id, "://")+3:]
	return processesInCgroup(t, id)
}

// processesInCgroup returns the PIDs whose cgroup path names the container id.
func processesInCgroup(t testing.TB, containerID string) []int {
	t.Helper()
	cgroups, err := filepath.Glob("/proc/[0-9]*/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range cgroups {
		raw, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(raw), containerID) {
			continue // gone meanwhile, or another process
		}
		var pid int
		if _, err := fmt.Sscanf(f, "/proc/%d/cgroup", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
