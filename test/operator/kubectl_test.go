package operator_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// kubectl runs the real kubectl (built with the envtest binaries) against the envtest
// API server as a cluster admin and returns its output.
func kubectl(t testing.TB, env *kube.Env, args ...string) string {
	t.Helper()
	out, err := kubectlErr(t, env, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlErr(t testing.TB, env *kube.Env, args ...string) (string, error) {
	t.Helper()
	path := adminKubeconfig(t, env, "admin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Kubectl(), append([]string{"--kubeconfig", path}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestKubectlApplyScaleGetExplain: what a user does from a terminal, with the real
// kubectl: a server-side apply of an AtlasConsumer, `kubectl scale`, `kubectl get` with
// the printer columns and `kubectl explain`; a wrong manifest is refused with a
// message a human understands.
func TestKubectlApplyScaleGetExplain(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	manifest := filepath.Join(t.TempDir(), "audit.yaml")
	writeFile(t, manifest, `apiVersion: events.atlas.io/v1alpha1
kind: AtlasConsumer
metadata:
  name: audit
  namespace: `+ns+`
spec:
  mode: audit
  kafka:
    bootstrapServers: ["kafka-0.kafka:9092"]
    groupID: atlas-audit
  postgres:
    dsnSecretRef: {name: pg, key: dsn}
  replicas: 1
`)
	out := kubectl(t, env, "apply", "--server-side", "--field-manager=gitops", "-f", manifest)
	if !strings.Contains(out, "atlasconsumer.events.atlas.io/audit serverside-applied") {
		t.Fatalf("kubectl apply: %s", out)
	}
	dep := waitDeployment(t, env, ns, "audit")

	kubectl(t, env, "-n", ns, "scale", "ac/audit", "--replicas=3")
	waitReplicas(t, env, dep, 3, timeoutCreate, "Deployment scaled by kubectl scale")

	eventually(t, timeoutCreate, "kubectl get shows the columns", func() error {
		out := kubectl(t, env, "-n", ns, "get", "ac", "audit")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			return fmt.Errorf("output %q", out)
		}
		header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
		want := []string{"NAME", "MODE", "TOPIC", "GROUP", "DESIRED", "READY", "LAG", "AGE"}
		if strings.Join(header, " ") != strings.Join(want, " ") {
			return fmt.Errorf("columns %v, want %v", header, want)
		}
		if len(row) < 5 || row[1] != "audit" || row[2] != "atlas.domain-events.v1" || row[3] != "atlas-audit" || row[4] != "3" {
			return fmt.Errorf("row %v", row)
		}
		return nil
	})

	explain := kubectl(t, env, "explain", "atlasconsumer.spec.autoscaling.lagPerReplica")
	if !strings.Contains(explain, "desired replicas = ceil(total lag / lagPerReplica)") {
		t.Errorf("kubectl explain: %s", explain)
	}

	// The same manifest with a mode change is refused by the API server at apply time
	// (--force-conflicts: kubectl scale took spec.replicas over from "gitops").
	writeFile(t, manifest, strings.Replace(readFile(t, manifest), "mode: audit", "mode: indexer", 1))
	out, err := kubectlErr(t, env, "apply", "--server-side", "--force-conflicts", "--field-manager=gitops", "-f", manifest)
	if err == nil || !strings.Contains(out, "mode is immutable: delete and recreate the AtlasConsumer to change it") {
		t.Fatalf("a mode change was not refused (err %v): %s", err, out)
	}
}

// TestInstallerAppliesCleanly: dist/install.yaml (`make build-installer`, which
// `make test` runs first) passes a server-side dry run: every object, the CRD, RBAC
// and the manager Deployment, is valid for this API server.
func TestInstallerAppliesCleanly(t *testing.T) {
	t.Parallel()
	env := operatorEnv(t)
	path := repoFile(t, "dist", "install.yaml")
	objs, err := infra.Objects([]byte(readFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	generated, err := infra.Objects([]byte(readFile(t, repoFile(t, "config", "crd", "bases", "events.atlas.io_atlasconsumers.yaml"))))
	if err != nil || len(generated) != 1 {
		t.Fatalf("the generated CRD: %v", err)
	}
	if !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "CustomResourceDefinition" && reflect.DeepEqual(o.Object["spec"], generated[0].Object["spec"])
	}) {
		t.Fatalf("%s does not carry the current CRD: run `make build-installer`", path)
	}
	// A dry run creates nothing, so the namespace the objects go to must exist.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "atlas-system"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	out := kubectl(t, env, "apply", "--dry-run=server", "-f", path)
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/atlasconsumers.events.atlas.io",
		"clusterrole.rbac.authorization.k8s.io/atlas-manager-role",
		"deployment.apps/atlas-controller-manager created (server dry run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if err := get(t, env, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "atlas-system", Name: "atlas-controller-manager"}}); err == nil {
		t.Error("the dry run created the manager Deployment")
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (dist/install.yaml comes from `make build-installer`)", err)
	}
	return string(raw)
}
