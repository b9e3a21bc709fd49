package e2e_test

// The second install path, for real on the node: the Helm chart (charts/atlas-operator)
// installed, upgraded and uninstalled with the real helm, and the namespace-scoped
// kustomize overlay (config/namespaced). Both run before the shared operator of
// dist/install.yaml is installed (theCluster): these tests are not parallel, and this
// file's tests are the package's first.

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

const (
	chartRelease   = "atlas-chart"
	chartNamespace = "atlas-chart"
	crdName        = "atlasconsumers.events.atlas.io"
)

// withoutTheSharedOperator fails the test when the operator of dist/install.yaml is
// already installed (it would manage the same AtlasConsumers as the one under test).
func withoutTheSharedOperator(t *testing.T, c *cluster) {
	t.Helper()
	var d appsv1.Deployment
	err := c.client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: operatorDeployment}, &d)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("the shared operator (%s/%s) is installed already (%v): run this test first, or alone", operatorNamespace, operatorDeployment, err)
	}
}

// helm runs the real helm against the node.
func (c *cluster) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := infra.RunHelm(t, []string{"KUBECONFIG=" + c.kubeconfig, "HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()}, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// canI checks `kubectl auth can-i --as sa` for each check ("yes" or "no" wanted).
func (c *cluster) canI(t *testing.T, sa string, checks map[string]string) {
	t.Helper()
	for args, want := range checks {
		out, _ := c.kubectlErr(nil, append([]string{"auth", "can-i", "--as", sa}, strings.Fields(args)...)...)
		if got, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); got != want { // (a warning may follow)
			t.Errorf("kubectl auth can-i --as %s %s: %q, want %q", sa, args, got, want)
		}
	}
}

// podUIDs returns the UIDs of the consumer's pods.
func (s *system) podUIDs(t *testing.T, name string) []types.UID {
	t.Helper()
	var uids []types.UID
	for _, p := range s.pods(t, name) {
		uids = append(uids, p.UID)
	}
	slices.Sort(uids)
	return uids
}

// untouched fails the test when the operator acted on the AtlasConsumer name: a
// Deployment for it, or any status.
func (s *system) untouched(t *testing.T, name string) {
	t.Helper()
	var d appsv1.Deployment
	if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, &d); !apierrors.IsNotFound(err) {
		t.Errorf("the AtlasConsumer %s/%s in an unwatched namespace has a Deployment (%v)", s.ns, name, err)
	}
	if ac := s.consumer(t, name); ac.Status.ObservedGeneration != 0 || len(ac.Status.Conditions) != 0 {
		t.Errorf("the AtlasConsumer %s/%s in an unwatched namespace has a status: %+v", s.ns, name, ac.Status)
	}
}

// The chart, as users install it: `helm install` with the node's image and one watched
// namespace; the samples run there and an AtlasConsumer elsewhere stays untouched; the
// operator can read Secrets and Deployments in the watched namespace only; `helm upgrade`
// to a second namespace reaches it without restarting the running consumers; `helm
// uninstall` leaves no operator object behind (the CRD stays, by its keep policy, so
// AtlasConsumers and their consumers survive an uninstall).
func TestHelmChartInstallsUpgradesAndUninstalls(t *testing.T) {
	c := theNode(t)
	withoutTheSharedOperator(t, c)
	root := infra.RepoRoot(t)
	chart := filepath.Join(root, "charts", "atlas-operator")
	repo, tag, _ := strings.Cut(c.image, ":")
	watched, unwatched := newSystemOn(t, c), newSystemOn(t, c)
	t.Cleanup(func() {
		// whatever happened: no release, no namespace, no CRD left for the next tests
		_, _ = infra.RunHelm(t, []string{"KUBECONFIG=" + c.kubeconfig}, "uninstall", chartRelease, "-n", chartNamespace, "--ignore-not-found", "--wait")
		_, _ = c.kubectlErr(nil, "delete", "namespace", chartNamespace, "--ignore-not-found", "--wait")
		_, _ = c.kubectlErr(nil, "delete", "crd", crdName, "--ignore-not-found", "--wait", "--timeout=2m")
	})

	// A bad value fails `helm install` itself, naming the value, and installs nothing.
	out, err := infra.RunHelm(t, []string{"KUBECONFIG=" + c.kubeconfig}, "install", chartRelease, chart, "--namespace", chartNamespace,
		"--create-namespace", "--set", "replicaCount=-1")
	if err == nil || !strings.Contains(err.Error(), "replicaCount") {
		t.Fatalf("helm install with replicaCount=-1: %v %s", err, out)
	}
	if out, _ := c.kubectlErr(nil, "get", "namespace", chartNamespace, "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("a refused helm install created %s", out)
	}

	start := time.Now()
	c.helm(t, "install", chartRelease, chart, "--namespace", chartNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		"--set", "watchNamespaces={"+watched.ns+"}", "--wait", "--timeout", "3m")
	t.Logf("helm install: %s", time.Since(start).Round(time.Millisecond))
	c.kubectl(t, nil, "wait", "--for=condition=Established", "crd/"+crdName, "--timeout=30s")

	sa := "system:serviceaccount:" + chartNamespace + ":" + chartRelease + "-controller-manager"
	c.canI(t, sa, map[string]string{
		"list secrets -n " + watched.ns:                                "yes",
		"create deployments -n " + watched.ns:                          "yes",
		"patch atlasconsumers --subresource=status -n " + watched.ns:   "yes",
		"list secrets -n " + unwatched.ns:                              "no",
		"get secrets -n kube-system":                                   "no",
		"list secrets --all-namespaces":                                "no",
		"create deployments -n " + unwatched.ns:                        "no",
		"list atlasconsumers -n " + unwatched.ns:                       "no",
		"patch atlasconsumers --subresource=status -n " + unwatched.ns: "no",
	})

	watched.applySample(t, "audit", nil)
	watched.applySample(t, "indexer", nil)
	// The unwatched consumer pins its image: operator upgrades must leave it running.
	unwatched.applySample(t, "audit", map[string]any{"image": c.image})
	watched.waitRunning(t, "audit", 2, 3*time.Minute)
	watched.waitRunning(t, "indexer", 1, 3*time.Minute)
	watched.produce(t, 500, 1000)
	watched.waitAudited(t, 500, 2*time.Minute)
	watched.waitIndexed(t, 2*time.Minute)
	unwatched.untouched(t, "audit")

	// helm upgrade: a second watched namespace and another log level. The operator rolls;
	// the consumers it already runs do not (their pods are the same).
	restarts := map[string][]types.UID{"audit": watched.podUIDs(t, "audit"), "indexer": watched.podUIDs(t, "indexer")}
	c.helm(t, "upgrade", chartRelease, chart, "--namespace", chartNamespace, "--reuse-values",
		"--set", "watchNamespaces={"+watched.ns+","+unwatched.ns+"}", "--set", "logLevel=debug", "--wait", "--timeout", "3m")
	if out := c.helm(t, "status", chartRelease, "-n", chartNamespace, "-o", "json"); !strings.Contains(out, `"version":2`) || !strings.Contains(out, `"status":"deployed"`) {
		t.Fatalf("helm status after the upgrade: %s", out)
	}
	unwatched.waitRunning(t, "audit", 2, 3*time.Minute)
	c.canI(t, sa, map[string]string{"list secrets -n " + unwatched.ns: "yes", "get secrets -n kube-system": "no"})
	watched.produce(t, 300, 1000)
	watched.waitAudited(t, 800, 2*time.Minute)
	for name, uids := range restarts {
		if after := watched.podUIDs(t, name); !slices.Equal(uids, after) {
			t.Errorf("the upgrade restarted %s: pods %v, then %v", name, uids, after)
		}
	}

	// The operator's next version, under traffic: each consumer that runs the operator's
	// image rolls once to the new one, nothing is lost or doubled, and the consumer that
	// pins its image is not restarted.
	next := infra.Require(t, envNodeNextImage, "the operator's next image on the node", howToGetNode)
	nextRepo, nextTag, _ := strings.Cut(next, ":")
	if nextRepo != repo {
		t.Fatalf("%s=%s is not another tag of %s", envNodeNextImage, next, c.image)
	}
	rollouts := map[string]int{"audit": watched.replicaSets(t, "audit"), "indexer": watched.replicaSets(t, "indexer")}
	pinned := unwatched.podUIDs(t, "audit")
	producer := watched.produceCmd(t, 10_000, 2_000) // ~5 s of traffic
	if err := producer.Start(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	c.helm(t, "upgrade", chartRelease, chart, "--namespace", chartNamespace, "--reuse-values",
		"--set", "image.tag="+nextTag, "--wait", "--timeout", "3m")
	t.Logf("helm upgrade to %s: %s", next, time.Since(start).Round(time.Millisecond))
	if err := producer.Wait(); err != nil {
		t.Fatalf("atlas produce: %v", err)
	}
	for name := range rollouts {
		eventually(t, 3*time.Minute, name+" runs the next image", func() error {
			pods := watched.pods(t, name)
			for _, p := range pods {
				if img := p.Spec.Containers[0].Image; img != next || !podReady(&p) || p.DeletionTimestamp != nil {
					return fmt.Errorf("pod %s runs %s, ready %v", p.Name, img, podReady(&p))
				}
			}
			if len(pods) == 0 {
				return fmt.Errorf("no pods")
			}
			return nil
		})
	}
	watched.waitAudited(t, 10_800, 3*time.Minute)
	watched.waitIndexed(t, 3*time.Minute)
	for name, before := range rollouts {
		if after := watched.replicaSets(t, name); after != before+1 {
			t.Errorf("%s rolled %d times for one operator upgrade, want once", name, after-before)
		}
	}
	if after := unwatched.podUIDs(t, "audit"); !slices.Equal(pinned, after) {
		t.Errorf("the upgrade restarted the consumer that pins its image: pods %v, then %v", pinned, after)
	}

	// A restart of the operator with nothing changed writes nothing (the indexer, which
	// writes its measured lag, aside).
	time.Sleep(3 * time.Second)
	versions := func() map[string]string {
		out := map[string]string{}
		for _, s := range []*system{watched, unwatched} {
			out[s.ns+"/AtlasConsumer audit"] = s.consumer(t, "audit").ResourceVersion
			out[s.ns+"/Deployment audit"] = s.deployment(t, "audit").ResourceVersion
		}
		out[watched.ns+"/Deployment indexer"] = watched.deployment(t, "indexer").ResourceVersion
		return out
	}
	before := versions()
	c.kubectl(t, nil, "-n", chartNamespace, "rollout", "restart", "deploy/"+chartRelease+"-controller-manager")
	c.kubectl(t, nil, "-n", chartNamespace, "rollout", "status", "deploy/"+chartRelease+"-controller-manager", "--timeout=2m")
	time.Sleep(15 * time.Second) // the new operator's first reconciles of every consumer
	if after := versions(); !maps.Equal(before, after) {
		t.Errorf("a restart of the operator wrote: resourceVersions %v, then %v", before, after)
	}

	// helm uninstall: nothing of the release is left but the CRD (kept on purpose).
	c.helm(t, "uninstall", chartRelease, "--namespace", chartNamespace, "--wait", "--timeout", "2m")
	ctx := context.Background()
	selector := client.MatchingLabels{"app.kubernetes.io/instance": chartRelease}
	// (helm waits for what it deleted; the operator's pods go after, within their grace period)
	eventually(t, time.Minute, "nothing of the release is left", func() error {
		left := map[string]int{}
		for kind, list := range map[string]client.ObjectList{
			"Deployment": &appsv1.DeploymentList{}, "ServiceAccount": &corev1.ServiceAccountList{}, "Service": &corev1.ServiceList{},
			"Role": &rbacv1.RoleList{}, "RoleBinding": &rbacv1.RoleBindingList{}, "ClusterRole": &rbacv1.ClusterRoleList{},
			"ClusterRoleBinding": &rbacv1.ClusterRoleBindingList{}, "Pod": &corev1.PodList{},
		} {
			if err := c.client.List(ctx, list, selector); err != nil {
				return err
			}
			if n := meta.LenList(list); n > 0 {
				left[kind] = n
			}
		}
		var pods corev1.PodList
		if err := c.client.List(ctx, &pods, client.InNamespace(chartNamespace)); err != nil {
			return err
		}
		if n := len(pods.Items); n > 0 {
			left["Pod in "+chartNamespace] = n
		}
		if len(left) > 0 {
			return fmt.Errorf("left behind: %v", left)
		}
		return nil
	})
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.client.Get(ctx, client.ObjectKey{Name: crdName}, &crd); err != nil || crd.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("the CRD after helm uninstall: %v %v, want it kept", err, crd.Annotations)
	}
	watched.waitRunning(t, "audit", 2, time.Minute) // the consumers outlive the operator

	// Leave the node as found: the CRD (and with it the test's AtlasConsumers) goes.
	c.kubectl(t, nil, "delete", "crd", crdName, "--wait", "--timeout=2m")
}

// The kustomize overlay config/namespaced, applied as its comment says: the operator runs
// with a Role in atlas-consumers only; it reconciles an AtlasConsumer there and leaves one
// in another namespace untouched; `kubectl delete -k` removes it all.
func TestNamespacedOverlayGrantsOnlyItsNamespace(t *testing.T) {
	c := theNode(t)
	withoutTheSharedOperator(t, c)
	overlay := filepath.Join(infra.RepoRoot(t), "config", "namespaced")
	ctx := context.Background()
	const watchedNS = "atlas-consumers"
	if err := c.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: watchedNS}}); err != nil {
		t.Fatalf("create namespace %s: %v", watchedNS, err)
	}
	unwatched := c.namespace(t, "e2e-unwatched")
	t.Cleanup(func() {
		_, _ = c.kubectlErr(nil, "delete", "-k", overlay, "--ignore-not-found", "--wait", "--timeout=3m")
		_, _ = c.kubectlErr(nil, "delete", "namespace", watchedNS, "--ignore-not-found", "--wait", "--timeout=2m")
	})
	c.kubectl(t, nil, "apply", "--server-side", "-k", overlay)
	c.kubectl(t, nil, "wait", "--for=condition=Established", "crd/"+crdName, "--timeout=30s")
	if out, err := c.kubectlErr(nil, "-n", operatorNamespace, "rollout", "status", "deploy/"+operatorDeployment, "--timeout=2m"); err != nil {
		t.Fatalf("the namespaced operator did not start: %v %s", err, out)
	}
	sa := "system:serviceaccount:" + operatorNamespace + ":" + operatorDeployment
	c.canI(t, sa, map[string]string{
		"list secrets -n " + watchedNS:          "yes",
		"create deployments -n " + watchedNS:    "yes",
		"list secrets -n " + unwatched:          "no",
		"list secrets --all-namespaces":         "no",
		"create deployments -n " + unwatched:    "no",
		"list atlasconsumers -n " + unwatched:   "no",
		"get secrets -n " + operatorNamespace:   "no",
		"create leases -n " + operatorNamespace: "yes",
	})

	// An AtlasConsumer in each namespace: the watched one is reconciled (its Secret is
	// missing, which its status says), the other is left alone.
	consumer := func(ns string) map[string]any {
		return map[string]any{
			"apiVersion": "events.atlas.io/v1alpha1", "kind": "AtlasConsumer",
			"metadata": map[string]any{"name": "audit", "namespace": ns},
			"spec": map[string]any{"mode": "audit",
				"kafka":    map[string]any{"bootstrapServers": toAny(infra.KafkaBrokers(t))},
				"postgres": map[string]any{"dsnSecretRef": map[string]any{"name": "atlas-postgres", "key": "dsn"}}},
		}
	}
	c.applyJSON(t, watchedNS, consumer(watchedNS))
	c.applyJSON(t, unwatched, consumer(unwatched))
	s := &system{cluster: c, ns: watchedNS}
	eventually(t, time.Minute, "the watched AtlasConsumer has a status", func() error {
		if ac := s.consumer(t, "audit"); len(ac.Status.Conditions) == 0 {
			return fmt.Errorf("no conditions")
		}
		return nil
	})
	t.Logf("watched: %+v", s.consumer(t, "audit").Status.Conditions)
	(&system{cluster: c, ns: unwatched}).untouched(t, "audit")

	c.kubectl(t, nil, "delete", "-k", overlay, "--wait", "--timeout=3m")
	var d appsv1.Deployment
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: operatorDeployment}, &d); !apierrors.IsNotFound(err) {
		t.Fatalf("the operator after kubectl delete -k: %v", err)
	}
}

// replicaSets counts the ReplicaSets of the consumer's Deployment: one per rollout (the
// Deployment keeps its old ones, revisionHistoryLimit permitting).
func (s *system) replicaSets(t *testing.T, name string) int {
	t.Helper()
	var list appsv1.ReplicaSetList
	if err := s.client.List(context.Background(), &list, client.InNamespace(s.ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rs := range list.Items {
		for _, o := range rs.OwnerReferences {
			if o.Kind == "Deployment" && o.Name == name {
				n++
			}
		}
	}
	return n
}
