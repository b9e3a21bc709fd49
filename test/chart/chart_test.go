// Package chart_test checks the Helm chart (charts/atlas-operator) with the real helm:
// it lints, it renders what dist/install.yaml installs (one source: the CRDs and the
// manager's rules are copies of what `make manifests` generates, the rest is compared
// here), its namespace scope grants nothing outside the watched namespaces, and its
// values.schema.json refuses bad values with a message naming them. Installing,
// upgrading and uninstalling it on a real node is test/e2e's.
package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// render runs `helm template atlas charts/atlas-operator -n atlas-system` with extra args.
func render(t *testing.T, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	root := infra.RepoRoot(t)
	out, err := infra.RunHelm(t, nil, append([]string{"template", "atlas", filepath.Join(root, "charts", "atlas-operator"), "--namespace", "atlas-system"}, args...)...)
	if err != nil {
		return nil, err
	}
	return infra.Objects([]byte(out))
}

func mustRender(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

func find(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

func TestChartLints(t *testing.T) {
	t.Parallel()
	chart := filepath.Join(infra.RepoRoot(t), "charts", "atlas-operator")
	for _, args := range [][]string{
		nil,
		{"--set", "watchNamespaces={team-a,team-b}"},
		{"--set", "replicaCount=2,metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true"},
	} {
		if out, err := infra.RunHelm(t, nil, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", args, err, out)
		}
	}
}

// helmOnly removes what only the chart adds (Helm's own labels and the CRD's keep
// policy), so the rest must equal dist/install.yaml.
func helmOnly(o *unstructured.Unstructured) {
	strip := func(m map[string]string, keys ...string) map[string]string {
		for _, k := range keys {
			delete(m, k)
		}
		return m
	}
	labels := []string{"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version", "helm.sh/chart"}
	if l := strip(o.GetLabels(), labels...); len(l) > 0 {
		o.SetLabels(l)
	} else {
		unstructured.RemoveNestedField(o.Object, "metadata", "labels")
	}
	if a := strip(o.GetAnnotations(), "helm.sh/resource-policy"); len(a) > 0 {
		o.SetAnnotations(a)
	} else {
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
	}
	if podLabels, ok, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels"); ok {
		_ = unstructured.SetNestedStringMap(o.Object, strip(podLabels, labels...), "spec", "template", "metadata", "labels")
	}
}

// The chart with its default values (release "atlas" in atlas-system) installs exactly
// what dist/install.yaml installs, object for object, but the Namespace (helm install
// --create-namespace makes it) and Helm's own labels.
func TestChartRendersTheInstaller(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(infra.RepoRoot(t), "dist", "install.yaml"))
	if err != nil {
		t.Fatalf("%v (make build-installer writes it)", err)
	}
	want, err := infra.Objects(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := mustRender(t)
	var wantKeys, gotKeys []string
	for _, o := range want {
		if o.GetKind() != "Namespace" {
			wantKeys = append(wantKeys, key(o))
		}
	}
	for _, o := range got {
		gotKeys = append(gotKeys, key(o))
	}
	slices.Sort(wantKeys)
	slices.Sort(gotKeys)
	if !slices.Equal(wantKeys, gotKeys) {
		t.Fatalf("the chart renders\n  %s\ndist/install.yaml installs\n  %s", strings.Join(gotKeys, "\n  "), strings.Join(wantKeys, "\n  "))
	}
	for _, w := range want {
		if w.GetKind() == "Namespace" {
			continue
		}
		g := find(got, w.GetKind(), w.GetNamespace(), w.GetName())
		helmOnly(g)
		for _, o := range []*unstructured.Unstructured{w, g} {
			unstructured.RemoveNestedField(o.Object, "metadata", "labels", "app.kubernetes.io/managed-by") // kustomize's
		}
		if !reflect.DeepEqual(w.Object, g.Object) {
			t.Errorf("%s differs from dist/install.yaml:\n%s", key(w), diff(w.Object, g.Object, ""))
		}
	}
}

// diff lists the paths where a (install.yaml) and b (the chart) differ.
func diff(a, b any, path string) string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			if d := diff(am[k], bm[k], path+"."+k); d != "" {
				out = append(out, d)
			}
		}
		slices.Sort(out)
		return strings.Join(out, "")
	}
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return fmt.Sprintf("  %s: install.yaml %v, chart %v\n", path, a, b)
}

// With watchNamespaces set, the manager's rules are granted by a Role in each watched
// namespace and by nothing cluster-wide: no ClusterRole of the chart names Secrets,
// Deployments or AtlasConsumers.
func TestChartNamespaceScope(t *testing.T) {
	t.Parallel()
	objs := mustRender(t, "--set", "watchNamespaces={team-a,team-b}")
	managerRole := find(mustRender(t), "ClusterRole", "", "atlas-manager-role")
	if managerRole == nil {
		t.Fatal("the cluster-wide chart has no ClusterRole atlas-manager-role")
	}
	for _, ns := range []string{"team-a", "team-b"} {
		role := find(objs, "Role", ns, "atlas-manager-role")
		binding := find(objs, "RoleBinding", ns, "atlas-manager-rolebinding")
		if role == nil || binding == nil {
			t.Fatalf("no Role and RoleBinding atlas-manager-role(binding) in %s", ns)
		}
		if !reflect.DeepEqual(role.Object["rules"], managerRole.Object["rules"]) {
			t.Errorf("Role in %s grants %v, want the manager's rules %v", ns, role.Object["rules"], managerRole.Object["rules"])
		}
		subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
		if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != "atlas-system" || subjects[0].(map[string]any)["name"] != "atlas-controller-manager" {
			t.Errorf("RoleBinding in %s binds %v", ns, subjects)
		}
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding":
			if ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name"); ref == "atlas-manager-role" {
				t.Errorf("%s binds the manager's rules cluster-wide", key(o))
			}
		case "ClusterRole":
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			for _, r := range rules {
				resources, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
				for _, res := range resources {
					if res == "secrets" || res == "deployments" || strings.HasPrefix(res, "atlasconsumers") {
						t.Errorf("%s grants %s cluster-wide in namespace scope", key(o), res)
					}
				}
			}
		case "Role", "RoleBinding":
			if ns := o.GetNamespace(); ns != "team-a" && ns != "team-b" && ns != "atlas-system" {
				t.Errorf("%s outside the watched namespaces and the operator's own", key(o))
			}
		case "Deployment":
			env, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			found := false
			for _, e := range env[0].(map[string]any)["env"].([]any) {
				if e := e.(map[string]any); e["name"] == "ATLAS_WATCH_NAMESPACES" {
					found = e["value"] == "team-a,team-b"
				}
			}
			if !found {
				t.Errorf("the operator's ATLAS_WATCH_NAMESPACES is not team-a,team-b: %v", env[0].(map[string]any)["env"])
			}
		}
	}
}

// The values users set most reach the operator's Deployment.
func TestChartValuesReachTheDeployment(t *testing.T) {
	t.Parallel()
	objs := mustRender(t, "--set", "replicaCount=2,image.repository=registry.example/atlas,image.tag=v1.2.3,logLevel=debug,nodeSelector.disk=ssd",
		"--set", "tolerations[0].key=dedicated,tolerations[0].operator=Exists,extraEnv[0].name=GOMEMLIMIT,extraEnv[0].value=200MiB",
		"--set", "consumerImage=registry.example/atlas:v1.2.2")
	d := find(objs, "Deployment", "atlas-system", "atlas-controller-manager")
	if d == nil {
		t.Fatal("no Deployment atlas-system/atlas-controller-manager")
	}
	replicas := fmt.Sprint(d.Object["spec"].(map[string]any)["replicas"])
	ctr := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	pod := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	env := map[string]any{}
	for _, e := range ctr["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = e.(map[string]any)["value"]
	}
	for what, ok := range map[string]bool{
		"replicas 2":                          replicas == "2",
		"image registry.example/atlas:v1.2.3": ctr["image"] == "registry.example/atlas:v1.2.3",
		"--log-level=debug":                   slices.Contains(toStrings(ctr["args"]), "--log-level=debug"),
		"--leader-elect":                      slices.Contains(toStrings(ctr["args"]), "--leader-elect"),
		"nodeSelector disk=ssd":               reflect.DeepEqual(pod["nodeSelector"], map[string]any{"disk": "ssd"}),
		"a toleration":                        len(pod["tolerations"].([]any)) == 1,
		"GOMEMLIMIT":                          env["GOMEMLIMIT"] == "200MiB",
		"consumer image":                      env["ATLAS_CONSUMER_IMAGE"] == "registry.example/atlas:v1.2.2",
	} {
		if !ok {
			t.Errorf("the Deployment lacks %s:\n%v", what, d.Object)
		}
	}
	// The optional monitoring objects render when asked for.
	objs = mustRender(t, "--set", "metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true")
	for _, want := range []string{"ServiceMonitor atlas-system/atlas-controller-manager-metrics-monitor", "ServiceMonitor atlas-system/atlas-consumers-metrics-monitor", "PrometheusRule atlas-system/atlas-alerts"} {
		if !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return key(o) == want }) {
			t.Errorf("no %s with metrics.serviceMonitor.enabled and prometheusRule.enabled", want)
		}
	}
	// The chart's alerting rules are config/prometheus/alerts.yaml, which promtool tests,
	// and so is config/prometheus's PrometheusRule; the operator's ServiceMonitor keeps the
	// AtlasConsumers' namespace label of its series.
	raw, err := os.ReadFile(filepath.Join(infra.RepoRoot(t), "config", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(filepath.Join(infra.RepoRoot(t), "config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kustomized, err := infra.Objects(raw)
	if err != nil || len(kustomized) != 1 {
		t.Fatalf("config/prometheus/prometheusrule.yaml: %d objects, %v", len(kustomized), err)
	}
	for _, o := range append(kustomized, objs...) {
		if o.GetKind() == "PrometheusRule" && !reflect.DeepEqual(o.Object["spec"], rules) {
			t.Errorf("%s: its spec is not config/prometheus/alerts.yaml (run make manifests)", key(o))
		}
		if o.GetKind() == "ServiceMonitor" && strings.Contains(o.GetName(), "controller-manager") {
			if honor, _, _ := unstructured.NestedBool(toMap(unstructured.NestedSlice(o.Object, "spec", "endpoints")), "honorLabels"); !honor {
				t.Errorf("ServiceMonitor %s: the operator's endpoint does not honor its series' labels", key(o))
			}
		}
	}
}

// toMap is the first element of a slice read with unstructured.NestedSlice, as a map.
func toMap(items []any, _ bool, _ error) map[string]any {
	if len(items) == 0 {
		return nil
	}
	m, _ := items[0].(map[string]any)
	return m
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// A bad value fails `helm template` (and so `helm install`) before anything is rendered,
// with a message that names the value and what is wrong with it.
func TestChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string // all in the message
	}{
		{"negative replicas", []string{"--set", "replicaCount=-1"}, []string{"replicaCount", "minimum"}},
		{"an unknown key", []string{"--set", "replicas=2"}, []string{"replicas", "additional"}},
		{"an unknown nested key", []string{"--set", "metrics.servicemonitor.enabled=true"}, []string{"servicemonitor", "additional"}},
		{"a wrong type", []string{"--set-string", "replicaCount=two"}, []string{"replicaCount", "integer"}},
		{"a wrong type of list", []string{"--set", "watchNamespaces=team-a"}, []string{"watchNamespaces", "array"}},
		{"a namespace that cannot exist", []string{"--set", "watchNamespaces={Team_A}"}, []string{"watchNamespaces", "Team_A"}},
		{"an unknown log level", []string{"--set", "logLevel=verbose"}, []string{"logLevel", "verbose"}},
		{"two replicas without a leader", []string{"--set", "replicaCount=2,leaderElection.enabled=false"}, []string{"replicaCount > 1 needs leaderElection.enabled"}},
		{"a pod label the selector owns", []string{"--set", "podLabels.control-plane=other"}, []string{"podLabels", "control-plane"}},
		{"an all-digit tag given as a number", []string{"--set", "image.tag=20261201"}, []string{"image/tag", "string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v rendered %d objects, want an error", tc.args, len(objs))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
			t.Logf("%v", err)
		})
	}
}
