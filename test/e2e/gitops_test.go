package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Flux on the node, exported by hack/test.sh.
const (
	envFluxDir   = "ATLAS_TEST_FLUX_DIR"
	howToGetFlux = "build Flux's controllers and their images with `export " + envFluxDir + "=$(hack/flux.sh)`, then load " +
		"both images on the node: `hack/node.sh load /tmp/atlas-node $" + envFluxDir + "/source-controller-image.tar` " +
		"(and kustomize-controller-image.tar)"
)

var (
	gitRepositoryKind = schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: "v1", Kind: "GitRepository"}
	kustomizationKind = schema.GroupVersionKind{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization"}
)

var fluxInstall struct {
	once sync.Once
	err  error
}

// Flux syncs the audit and indexer AtlasConsumers from a Git repository served on the
// host, with config/samples/gitops/flux.yaml (given the repository's URL, the test's
// namespace and short intervals), beside the operator's lag scaling:
//   - the Kustomization is Ready only once both consumers' pods are (Flux's own kstatus
//     health check of the AtlasConsumer's conditions);
//   - a commit changing the batch size rolls the audit pods, and the Kustomization reports
//     that revision applied and healthy;
//   - while Flux re-applies every 10 s, the indexer stays scaled up and nobody writes the
//     AtlasConsumers or their Deployments for a quiet minute;
//   - a commit the CRD refuses (replicas with autoscaling) leaves the running consumer as it
//     was and the Kustomization not Ready, with the CRD's message;
//   - suspend: true in Git scales the indexer to zero; removing its file prunes it and
//     everything it owned.
func TestFluxSyncsConsumersFromGit(t *testing.T) {
	s := newSystem(t)
	s.installFlux(t)
	repo := infra.NewGitRepo(t, s.hostIP)
	ctx := context.Background()

	audit := map[string]any{"replicas": int64(1), "batch.size": int64(200)}
	// Small batches make one pod slower than a burst; the long window holds the scale-up
	// through the quiet minute.
	indexer := map[string]any{
		"batch.size":                         int64(10),
		"autoscaling.lagPerReplica":          int64(1_000),
		"autoscaling.maxReplicas":            int64(3),
		"autoscaling.pollInterval":           "5s",
		"autoscaling.scaleDownStabilization": "15m",
	}
	commit := func(message string) string {
		t.Helper()
		repo.Write("consumers/audit.yaml", s.sampleYAML(t, "audit", audit))
		if indexer != nil {
			repo.Write("consumers/indexer.yaml", s.sampleYAML(t, "indexer", indexer))
		}
		sha := repo.Commit(message)
		t.Logf("committed %s: %s", sha[:12], message)
		return sha
	}

	// 1. The first commit; the Kustomization waits for both consumers.
	rev := commit("audit and indexer consumers")
	s.applyFluxSample(t, repo.URL)
	var messages []string
	waited := false
	eventually(t, 4*time.Minute, "the Kustomization Ready at the first commit", func() error {
		ks := s.kustomization(t)
		ready := ks.ready(rev)
		if msg := ks.readyMessage(); len(messages) == 0 || messages[len(messages)-1] != msg {
			messages = append(messages, msg)
		}
		notReady := s.consumersNotReady(t, "audit", "indexer")
		if ready && notReady != "" {
			t.Fatalf("the Kustomization is Ready at %s while %s", rev[:12], notReady)
		}
		if !ready && ks.attempted(rev) && notReady != "" {
			waited = true // applied, and waiting for the consumers' health
		}
		if !ready {
			return fmt.Errorf("Kustomization: %s; consumers: %s", ks.readyMessage(), notReady)
		}
		return nil
	})
	t.Logf("the Kustomization's Ready messages until Ready: %q", messages)
	if !waited {
		t.Fatalf("never saw the Kustomization applied at %s and waiting for consumers that are not Ready yet: the test proves nothing", rev[:12])
	}

	// 2. A commit changing the audit consumer's batch size rolls its pods.
	oldPods := podNames(s.pods(t, "audit"))
	audit["batch.size"] = int64(300)
	rev = commit("audit: batches of 300")
	eventually(t, 3*time.Minute, "the batch-size commit applied and healthy", func() error {
		ks := s.kustomization(t)
		if !ks.ready(rev) {
			return fmt.Errorf("Kustomization: %s", ks.readyMessage())
		}
		return nil
	})
	// Ready at the new revision means the rollout is complete: only new pods, each Ready,
	// each with the new batch size.
	pods := s.pods(t, "audit")
	if len(pods) != 1 {
		t.Fatalf("audit pods after the rollout: %v, want 1", podNames(pods))
	}
	for _, p := range pods {
		if oldPods[p.Name] || !podReady(&p) || p.DeletionTimestamp != nil {
			t.Fatalf("audit pod %s after the rollout: old %v, ready %v, terminating %v (old pods %v)", p.Name, oldPods[p.Name], podReady(&p), p.DeletionTimestamp != nil, oldPods)
		}
		if got := envValue(p.Spec.Containers[0], names.EnvName(names.FlagBatchSize)); got != "300" {
			t.Fatalf("audit pod %s: batch size %q, want 300", p.Name, got)
		}
	}

	// 3. Lag scales the indexer up; Flux's re-applies neither undo it nor write anything.
	s.produce(t, 20_000, 0)
	eventually(t, 2*time.Minute, "the indexer scaled up on lag", func() error {
		if ac := s.consumer(t, "indexer"); ac.Status.DesiredReplicas < 2 {
			return fmt.Errorf("desired %d, lag %v", ac.Status.DesiredReplicas, lagTotal(ac))
		}
		return nil
	})
	s.waitAudited(t, 20_000, 3*time.Minute)
	s.waitCommitted(t, "indexer")
	scaled := s.consumer(t, "indexer").Status.DesiredReplicas
	s.waitRunning(t, "indexer", scaled, 2*time.Minute)
	eventually(t, 30*time.Second, "status.lag at zero", func() error {
		if ac := s.consumer(t, "indexer"); ac.Status.Lag == nil || ac.Status.Lag.Total != 0 {
			return fmt.Errorf("status.lag %v", lagTotal(ac))
		}
		return nil
	})
	before := s.fluxReconciles(t)
	writes := s.countWrites(t, time.Minute)
	reapplied := s.fluxReconciles(t) - before
	if reapplied < 3 {
		t.Fatalf("Flux reconciled the Kustomization %d times in the quiet minute, want at least 3 (interval 10s)", reapplied)
	}
	if len(writes) > 0 {
		t.Fatalf("%d writes in a quiet minute while Flux reconciled %d times, want none:\n%s", len(writes), reapplied, strings.Join(writes, "\n"))
	}
	if ac := s.consumer(t, "indexer"); ac.Spec.Replicas != nil || ac.Status.DesiredReplicas != scaled {
		t.Fatalf("after the quiet minute: spec.replicas %v, desired %d; want none and %d", ptrString(ac.Spec.Replicas), ac.Status.DesiredReplicas, scaled)
	}
	t.Logf("Flux reconciled %d times in the quiet minute; the indexer stayed at %d replicas; no writes", reapplied, scaled)

	// 4. A commit the CRD refuses: replicas together with autoscaling.
	applied := rev
	generation := s.consumer(t, "indexer").Generation
	indexer["replicas"] = int64(3)
	bad := commit("indexer: replicas 3 (with autoscaling)")
	const refusal = "replicas and autoscaling are mutually exclusive"
	eventually(t, 2*time.Minute, "the Kustomization refuses the commit", func() error {
		ks := s.kustomization(t)
		if !ks.attempted(bad) || ks.readyStatus() != "False" || !strings.Contains(ks.readyMessage(), refusal) {
			return fmt.Errorf("attempted %s, Ready %s: %s", ks.lastAttempted(), ks.readyStatus(), ks.readyMessage())
		}
		if ks.lastApplied() != "main@sha1:"+applied {
			return fmt.Errorf("lastAppliedRevision %s, want %s", ks.lastApplied(), applied)
		}
		return nil
	})
	t.Logf("the Kustomization says: %s", s.kustomization(t).readyMessage())
	if ac := s.consumer(t, "indexer"); ac.Generation != generation || ac.Spec.Replicas != nil {
		t.Fatalf("the refused commit changed the indexer: generation %d (was %d), replicas %s", ac.Generation, generation, ptrString(ac.Spec.Replicas))
	}
	s.waitRunning(t, "indexer", scaled, 10*time.Second)

	// 5. suspend: true in Git scales the indexer to zero.
	delete(indexer, "replicas")
	indexer["suspend"] = true
	rev = commit("indexer: suspend")
	eventually(t, 2*time.Minute, "the suspended indexer at zero pods, the Kustomization Ready", func() error {
		if ks := s.kustomization(t); !ks.ready(rev) {
			return fmt.Errorf("Kustomization: %s", ks.readyMessage())
		}
		var dep appsv1.Deployment
		if err := s.client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "indexer"}, &dep); err != nil {
			return err
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 0 {
			return fmt.Errorf("Deployment replicas %s", ptrString(dep.Spec.Replicas))
		}
		if pods := s.pods(t, "indexer"); len(pods) > 0 {
			return fmt.Errorf("pods %v", podNames(pods))
		}
		return nil
	})

	// 6. Removing the file prunes the indexer and everything it owned.
	uid := s.consumer(t, "indexer").UID
	selector, err := labels.Parse(s.consumer(t, "indexer").Status.Selector)
	if err != nil {
		t.Fatal(err)
	}
	indexer = nil
	repo.Remove("consumers/indexer.yaml")
	rev = repo.Commit("indexer: removed")
	eventually(t, 2*time.Minute, "the indexer pruned with what it owned", func() error {
		if ks := s.kustomization(t); !ks.ready(rev) {
			return fmt.Errorf("Kustomization: %s", ks.readyMessage())
		}
		err := s.client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "indexer"}, &atlasv1alpha1.AtlasConsumer{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("AtlasConsumer indexer: %v", err)
		}
		if owned := s.ownedBy(t, uid); len(owned) > 0 {
			return fmt.Errorf("still there: %v", owned)
		}
		var sets appsv1.ReplicaSetList
		if err := s.client.List(ctx, &sets, client.InNamespace(s.ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return err
		}
		var pods corev1.PodList
		if err := s.client.List(ctx, &pods, client.InNamespace(s.ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return err
		}
		if len(sets.Items) > 0 || len(pods.Items) > 0 {
			return fmt.Errorf("%d ReplicaSets, pods %v", len(sets.Items), podNames(pods.Items))
		}
		return nil
	})
	s.waitRunning(t, "audit", 1, 10*time.Second)
}

// installFlux installs Flux's source-controller and kustomize-controller (hack/flux.sh)
// on the node once: their CRDs, then hack/flux/install.yaml.
func (c *cluster) installFlux(t testing.TB) {
	t.Helper()
	dir := infra.Require(t, envFluxDir, "Flux controllers", howToGetFlux)
	root := infra.RepoRoot(t)
	fluxInstall.once.Do(func() { fluxInstall.err = c.applyFlux(root, dir) })
	if fluxInstall.err != nil {
		t.Fatalf("install Flux on the node: %v", fluxInstall.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []string{"source-controller", "kustomize-controller"} {
				out, _ := c.kubectlErr(nil, "-n", "flux-system", "logs", "deploy/"+d, "--tail", "25")
				t.Logf("%s log (last lines):\n%s", d, out)
			}
		}
	})
}

func (c *cluster) applyFlux(root, dir string) error {
	version := strings.TrimPrefix(filepath.Base(dir), "v") // hack/flux.sh caches under flux/v<version>
	if out, err := c.kubectlErr(nil, "apply", "--server-side", "-f", filepath.Join(dir, "crds")); err != nil {
		return fmt.Errorf("Flux CRDs: %w: %s", err, out)
	}
	if out, err := c.kubectlErr(nil, "wait", "--for=condition=Established", "--timeout=30s",
		"crd/gitrepositories.source.toolkit.fluxcd.io", "crd/kustomizations.kustomize.toolkit.fluxcd.io"); err != nil {
		return fmt.Errorf("Flux CRDs not established: %w: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(root, "hack", "flux", "install.yaml"))
	if err != nil {
		return err
	}
	manifest := strings.ReplaceAll(string(raw), "${FLUX_VERSION}", version)
	if out, err := c.kubectlErr([]byte(manifest), "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("hack/flux/install.yaml: %w: %s", err, out)
	}
	for _, d := range []string{"source-controller", "kustomize-controller"} {
		if out, err := c.kubectlErr(nil, "-n", "flux-system", "rollout", "status", "deploy/"+d, "--timeout=120s"); err != nil {
			pods, _ := c.kubectlErr(nil, "-n", "flux-system", "describe", "pods")
			return fmt.Errorf("%s did not become available: %w: %s\n%s", d, err, out, pods)
		}
	}
	return nil
}

// applyFluxSample applies config/samples/gitops/flux.yaml with the repository's URL, in the
// system's namespace (where it also syncs to), with intervals for a test.
func (s *system) applyFluxSample(t testing.TB, url string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(infra.RepoRoot(t), "config", "samples", "gitops", "flux.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := infra.Objects(raw)
	if err != nil {
		t.Fatalf("config/samples/gitops/flux.yaml: %v", err)
	}
	if len(objs) != 2 || objs[0].GroupVersionKind() != gitRepositoryKind || objs[1].GroupVersionKind() != kustomizationKind {
		t.Fatalf("config/samples/gitops/flux.yaml: want a GitRepository and a Kustomization")
	}
	set := func(o *unstructured.Unstructured, v any, path ...string) {
		if err := unstructured.SetNestedField(o.Object, v, path...); err != nil {
			t.Fatal(err)
		}
	}
	repo, ks := objs[0], objs[1]
	set(repo, url, "spec", "url")
	set(repo, "5s", "spec", "interval")
	set(ks, "10s", "spec", "interval")
	set(ks, "5s", "spec", "retryInterval")
	set(ks, "3m", "spec", "timeout")
	set(ks, s.ns, "spec", "targetNamespace")
	for _, o := range objs {
		o.SetNamespace(s.ns)
		s.applyJSON(t, s.ns, o.Object)
	}
}

// sampleYAML is the AtlasConsumer sample as committed to Git: applySample's object, as YAML.
func (s *system) sampleYAML(t testing.TB, name string, set map[string]any) []byte {
	t.Helper()
	doc, err := yaml.Marshal(s.sample(t, name, set))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// fluxKustomization is the Kustomization as the API server has it.
type fluxKustomization struct{ *unstructured.Unstructured }

func (s *system) kustomization(t testing.TB) fluxKustomization {
	t.Helper()
	ks := &unstructured.Unstructured{}
	ks.SetGroupVersionKind(kustomizationKind)
	if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: "atlas-consumers"}, ks); err != nil {
		t.Fatalf("get the Kustomization: %v", err)
	}
	return fluxKustomization{ks}
}

func (k fluxKustomization) condition(field string) string {
	conds, _, _ := unstructured.NestedSlice(k.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			v, _ := m[field].(string)
			return v
		}
	}
	return ""
}

func (k fluxKustomization) readyStatus() string  { return k.condition("status") }
func (k fluxKustomization) readyMessage() string { return k.condition("message") }
func (k fluxKustomization) lastApplied() string {
	v, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
	return v
}
func (k fluxKustomization) lastAttempted() string {
	v, _, _ := unstructured.NestedString(k.Object, "status", "lastAttemptedRevision")
	return v
}

// attempted tells whether Flux has tried to apply the commit sha.
func (k fluxKustomization) attempted(sha string) bool { return k.lastAttempted() == "main@sha1:"+sha }

// ready tells whether the Kustomization is Ready with the commit sha applied (and, with
// wait: true, healthy).
func (k fluxKustomization) ready(sha string) bool {
	observed, _, _ := unstructured.NestedInt64(k.Object, "status", "observedGeneration")
	return k.readyStatus() == "True" && k.lastApplied() == "main@sha1:"+sha && observed == k.GetGeneration()
}

// consumersNotReady says which of the consumers is not running every desired pod Ready
// (empty when all are), from the Deployments and pods rather than the operator's status.
func (s *system) consumersNotReady(t testing.TB, consumers ...string) string {
	t.Helper()
	var not []string
	for _, name := range consumers {
		var dep appsv1.Deployment
		if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, &dep); err != nil {
			not = append(not, fmt.Sprintf("%s: %v", name, client.IgnoreNotFound(err)))
			continue
		}
		want := ptrString(dep.Spec.Replicas)
		ready := 0
		pods := s.pods(t, name)
		for _, p := range pods {
			if podReady(&p) && p.DeletionTimestamp == nil {
				ready++
			}
		}
		if want == "0" || fmt.Sprint(ready) != want || len(pods) != ready {
			not = append(not, fmt.Sprintf("%s: %d of %d pods Ready, %s wanted", name, ready, len(pods), want))
		}
	}
	return strings.Join(not, "; ")
}

// countWrites watches the namespace's AtlasConsumers and Deployments for d and returns
// each change seen (a write to an object, its status included, changes it).
func (s *system) countWrites(t testing.TB, d time.Duration) []string {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: s.client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu     sync.Mutex
		writes []string
		wg     sync.WaitGroup
	)
	for _, list := range []client.ObjectList{&atlasv1alpha1.AtlasConsumerList{}, &appsv1.DeploymentList{}} {
		if err := s.client.List(ctx, list, client.InNamespace(s.ns)); err != nil {
			t.Fatal(err)
		}
		rv := list.(metav1.ListInterface).GetResourceVersion()
		w, err := wc.Watch(ctx, list, &client.ListOptions{Namespace: s.ns, Raw: &metav1.ListOptions{ResourceVersion: rv}})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type == watch.Bookmark {
						continue
					}
					o, _ := ev.Object.(client.Object)
					desc := fmt.Sprintf("%s %T", ev.Type, ev.Object)
					if o != nil {
						desc = fmt.Sprintf("%s %T %s resourceVersion %s generation %d", ev.Type, ev.Object, o.GetName(), o.GetResourceVersion(), o.GetGeneration())
					}
					mu.Lock()
					writes = append(writes, desc)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return writes
}

// fluxReconciles is how many reconciles of the system's Kustomization kustomize-controller
// has finished, from its own metrics (gotk_reconcile_duration_seconds_count).
func (s *system) fluxReconciles(t testing.TB) int {
	t.Helper()
	var pods corev1.PodList
	if err := s.client.List(context.Background(), &pods, client.InNamespace("flux-system"), client.MatchingLabels{"app": "kustomize-controller"}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("kustomize-controller pods: %d", len(pods.Items))
	}
	hc := http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + pods.Items[0].Status.PodIP + ":8080/metrics")
	if err != nil {
		t.Fatalf("kustomize-controller metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gotk_reconcile_duration_seconds_count{") &&
			strings.Contains(line, `kind="Kustomization"`) && strings.Contains(line, `name="atlas-consumers"`) &&
			strings.Contains(line, `namespace="`+s.ns+`"`) {
			fields := strings.Fields(line)
			n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return int(n)
		}
	}
	return 0
}

// ownedBy lists the namespace's Deployments, Services and PodDisruptionBudgets owned by uid
// (what the operator makes for an AtlasConsumer).
func (s *system) ownedBy(t testing.TB, uid types.UID) []string {
	t.Helper()
	var out []string
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &policyv1.PodDisruptionBudgetList{}} {
		if err := s.client.List(context.Background(), list, client.InNamespace(s.ns)); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			o, err := meta.Accessor(item)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range o.GetOwnerReferences() {
				if ref.UID == uid {
					out = append(out, fmt.Sprintf("%T %s", item, o.GetName()))
				}
			}
		}
	}
	return out
}

func podNames(pods []corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, p := range pods {
		out[p.Name] = true
	}
	return out
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
