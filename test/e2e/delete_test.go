package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Deleting an AtlasConsumer takes its Deployment, ReplicaSets, pods, Service and
// PodDisruptionBudget with it (owner references, the garbage collector), and the
// consumer processes on the machine end.
func TestDeletingTheConsumerRemovesItsWorkload(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.applySample(t, "audit", nil)
	s.waitRunning(t, "audit", 2, 2*time.Minute)
	var containers []string
	for _, p := range s.pods(t, "audit") {
		if len(containerPIDs(t, &p)) == 0 {
			t.Fatalf("no process found for pod %s", p.Name)
		}
		id := p.Status.ContainerStatuses[0].ContainerID
		containers = append(containers, id[strings.Index(id, "://")+3:])
	}

	owned := client.MatchingLabels{"app.kubernetes.io/instance": "audit"}
	// count returns how many objects of each kind the consumer has.
	count := func() (map[string]int, error) {
		lists := map[string]client.ObjectList{
			"Deployments":          &appsv1.DeploymentList{},
			"ReplicaSets":          &appsv1.ReplicaSetList{},
			"Pods":                 &corev1.PodList{},
			"Services":             &corev1.ServiceList{},
			"PodDisruptionBudgets": &policyv1.PodDisruptionBudgetList{},
		}
		n := map[string]int{}
		for kind, list := range lists {
			if err := s.client.List(context.Background(), list, client.InNamespace(s.ns), owned); err != nil {
				return nil, err
			}
			n[kind] = meta.LenList(list)
		}
		return n, nil
	}
	before, err := count()
	if err != nil {
		t.Fatal(err)
	}
	for kind, n := range before {
		if n == 0 {
			t.Fatalf("the consumer has no %s before its deletion: %v", kind, before)
		}
	}

	s.kubectl(t, nil, "-n", s.ns, "delete", "ac", "audit")
	eventually(t, 2*time.Minute, "the consumer's objects and processes gone", func() error {
		left, err := count()
		if err != nil {
			return err
		}
		for kind, n := range left {
			if n > 0 {
				return fmt.Errorf("%d %s left", n, kind)
			}
		}
		for _, id := range containers {
			if pids := processesInCgroup(t, id); len(pids) > 0 {
				return fmt.Errorf("container %.12s still runs processes %v", id, pids)
			}
		}
		return nil
	})
}
