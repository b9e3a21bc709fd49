package kube_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/atlas-platform/atlas-operator/test/kube"
)

// TestKubernetesAPIServesDeployments is the smoke test of the Kubernetes component: envtest's kube-apiserver is real (reports its
// version), serves apps/v1 Deployments, and serves the project's AtlasConsumer CRD.
func TestKubernetesAPIServesDeployments(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := kube.Start(t)

	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("kubernetes: kube-apiserver %s (%s)", v.GitVersion, v.Platform)
	if v.Major != "1" || v.GitVersion == "" || v.GitVersion == "v0.0.0-master+$Format:%H$" {
		t.Fatalf("unexpected server version %+v", v)
	}

	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "atlas:dev"}}},
			},
		},
	}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	var got appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), &got); err != nil {
		t.Fatalf("get deployment: %v", err)
	}
	if got.UID == "" || *got.Spec.Replicas != 2 {
		t.Fatalf("deployment came back as %+v", got.Spec)
	}

	resources, err := dc.ServerResourcesForGroupVersion("events.atlas.io/v1alpha1")
	if err != nil {
		t.Fatalf("AtlasConsumer CRD not served: %v", err)
	}
	found := false
	for _, r := range resources.APIResources {
		if r.Kind == "AtlasConsumer" && !strings.Contains(r.Name, "/") {
			found = true
			t.Logf("kubernetes: serves %s (short names %v)", r.Name, r.ShortNames)
		}
	}
	if !found {
		t.Fatalf("events.atlas.io/v1alpha1 does not serve AtlasConsumer: %+v", resources.APIResources)
	}
}
