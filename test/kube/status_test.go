package kube_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// A new AtlasConsumer that no operator has reconciled yet reads as InProgress to kstatus
// (what Flux's health check and kpt compute), not Current: the API server shows its status
// with observedGeneration 0. Without that default a GitOps sync waiting for health finished
// before the operator had looked at the consumer (seen in test/e2e with Flux). Once the
// operator writes a status of the current generation with no Reconciling or Stalled
// condition, it is Current.
func TestANewAtlasConsumerIsInProgressUntilReconciled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := kube.Start(t) // no operator runs here

	ac := &atlasv1alpha1.AtlasConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fresh"},
		Spec: atlasv1alpha1.AtlasConsumerSpec{
			Mode:     atlasv1alpha1.AtlasConsumerModeAudit,
			Kafka:    atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"kafka:9092"}},
			Postgres: atlasv1alpha1.PostgresSpec{DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "dsn"}},
			Replicas: ptr.To[int32](1),
		},
	}
	if err := env.Client.Create(ctx, ac); err != nil {
		t.Fatal(err)
	}
	kstatus := func() *status.Result {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(atlasv1alpha1.GroupVersion.WithKind("AtlasConsumer"))
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ac), u); err != nil {
			t.Fatal(err)
		}
		res, err := status.Compute(u)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// (read unstructured: the typed object would drop an observedGeneration of 0)
	if res := kstatus(); res.Status != status.InProgressStatus {
		t.Fatalf("kstatus of a never reconciled AtlasConsumer = %s (%s), want %s", res.Status, res.Message, status.InProgressStatus)
	}

	// What the operator writes for a consumer at rest.
	ac.Status = atlasv1alpha1.AtlasConsumerStatus{ObservedGeneration: ac.Generation, Conditions: []metav1.Condition{
		{Type: atlasv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Available", Message: "1 of 1 pods ready", LastTransitionTime: metav1.Now()},
		{Type: atlasv1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: "Available", Message: "1 of 1 pods ready", LastTransitionTime: metav1.Now()},
		{Type: atlasv1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "Available", Message: "1 of 1 pods ready", LastTransitionTime: metav1.Now()},
	}}
	if err := env.Client.Status().Update(ctx, ac); err != nil {
		t.Fatal(err)
	}
	if res := kstatus(); res.Status != status.CurrentStatus {
		t.Fatalf("kstatus after the operator's status = %s (%s), want %s", res.Status, res.Message, status.CurrentStatus)
	}
}
