package operator_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
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

// assertArgoHealth runs the Argo CD health check shipped in config/argocd on the
// AtlasConsumer as stored (Argo CD runs it with gopher-lua too) and compares its verdict.
func assertArgoHealth(t testing.TB, env *kube.Env, ac *atlasv1alpha1.AtlasConsumer, want string) {
	t.Helper()
	script, err := os.ReadFile(repoFile(t, "config", "argocd", "atlasconsumer-health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if err := get(t, env, ac); err != nil {
		t.Fatal(err)
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ac)
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	fn, err := L.LoadString(string(script))
	if err != nil {
		t.Fatalf("load the health check: %v", err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		t.Fatalf("run the health check: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %v, want a table", L.Get(-1))
	}
	status, msg := hs.RawGetString("status").String(), hs.RawGetString("message").String()
	if status != want {
		t.Errorf("Argo CD health = %s (%s), want %s", status, msg, want)
	}
}

// toLua converts JSON-like Go values to Lua values the way Argo CD does.
func toLua(L *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(t)
	case string:
		return lua.LString(t)
	case int64:
		return lua.LNumber(t)
	case float64:
		return lua.LNumber(t)
	case map[string]any:
		tbl := L.NewTable()
		for k, val := range t {
			tbl.RawSetString(k, toLua(L, val))
		}
		return tbl
	case []any:
		tbl := L.NewTable()
		for _, val := range t {
			tbl.Append(toLua(L, val))
		}
		return tbl
	default:
		return lua.LString(fmt.Sprint(t))
	}
}
