package operator_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// A fleet that reaches the operator at once (applied by Argo CD or Flux, or created while
// the operator was down) gets every consumer's Deployment, which starts its pods, before
// any consumer's metrics Service and status: a consumer's first reconcile applies its
// Deployment alone, and the reconciles that Deployment's creation and the Secret's wake
// bring wait behind the other consumers' first ones. Here 60 AtlasConsumers wait for the
// real `atlas manager` process (on its own API server), run with one worker so that the
// order of its writes is the order of its queue: no Service may be written before the
// last Deployment. Doing a consumer's whole work in one reconcile writes 59 of them
// before it; queueing the creation's echo at normal priority, some.
func TestAFleetGetsItsDeploymentsFirst(t *testing.T) {
	t.Parallel()
	env := kube.Start(t)
	const ns, count = "fleet", 60
	mustCreate(t, env, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	dsnSecret(t, env, ns, "pg", dsnValue)
	for i := range count {
		mustCreate(t, env, auditConsumer(ns, fmt.Sprintf("consumer-%02d", i)))
	}
	startManagerProcess(t, env, "--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--log-level", "warn",
		"--max-concurrent-reconciles", "1")
	ctx := context.Background()
	eventually(t, timeoutCreate, "every AtlasConsumer has its Deployment, Service and status", func() error {
		var list atlasv1alpha1.AtlasConsumerList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, ac := range list.Items {
			if ac.Status.ObservedGeneration != ac.Generation {
				return fmt.Errorf("%s has no status yet", ac.Name)
			}
		}
		var svcs corev1.ServiceList
		if err := env.Client.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(svcs.Items) != count {
			return fmt.Errorf("%d of %d Services", len(svcs.Items), count)
		}
		return nil
	})
	// The order of the writes, from the objects' resource versions (etcd's revisions, one
	// counter for every write; no controller changes these objects after their creation
	// on this API server, which runs none).
	var deps appsv1.DeploymentList
	var svcs corev1.ServiceList
	if err := env.Client.List(ctx, &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	revision := func(o client.Object) int64 {
		rv, err := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
		if err != nil {
			t.Fatalf("%s: resource version %q: %v", o.GetName(), o.GetResourceVersion(), err)
		}
		return rv
	}
	var lastDeployment int64
	for i := range deps.Items {
		lastDeployment = max(lastDeployment, revision(&deps.Items[i]))
	}
	var early []string
	for i := range svcs.Items {
		if revision(&svcs.Items[i]) < lastDeployment {
			early = append(early, svcs.Items[i].Name)
		}
	}
	slices.Sort(early)
	if len(deps.Items) != count || len(early) > 0 {
		t.Fatalf("%d Deployments; %d Services written before the last Deployment (want none): %v", len(deps.Items), len(early), early)
	}
	t.Logf("%d Services of %d written before the last Deployment", len(early), count)
}
