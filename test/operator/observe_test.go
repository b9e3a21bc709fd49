package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// assertEvent waits for an Event about the AtlasConsumer with the reason and a note
// containing notePart.
func assertEvent(t testing.TB, env *kube.Env, ns, name, reason, notePart string) {
	t.Helper()
	eventually(t, 20*time.Second, "event "+reason, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "AtlasConsumer" && e.Regarding.Name == name {
				if e.Reason == reason && strings.Contains(e.Note, notePart) {
					return nil
				}
				seen = append(seen, e.Reason+": "+e.Note)
			}
		}
		return fmt.Errorf("no %s event containing %q among %q", reason, notePart, seen)
	})
}

// assertKstatus computes the AtlasConsumer's status the way Flux and kpt do
// (sigs.k8s.io/cli-utils kstatus) and compares it.
func assertKstatus(t testing.TB, env *kube.Env, ac *atlasv1alpha1.AtlasConsumer, want string) {
	t.Helper()
	eventually(t, 20*time.Second, "kstatus "+want, func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ac)
		if err != nil {
			return err
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			return err
		}
		if string(res.Status) != want {
			return fmt.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, want)
		}
		return nil
	})
}

// reconcileCount is how many AtlasConsumer reconciles the operator finished.
func reconcileCount(t testing.TB) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather() // controller-runtime's own metrics

	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "atlasconsumer" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
