// Package e2e_test runs the whole system on one machine, as users run it: a real
// single-node Kubernetes (hack/node.sh: kube-apiserver, controller-manager, scheduler,
// kubelet, kube-proxy, CoreDNS, containerd) with the operator installed from its own
// dist/install.yaml (a pod with its own ServiceAccount and RBAC, nothing more), whose
// consumer pods run the project's own image and consume from the real Apache Kafka broker
// into the real Postgres and Elasticsearch of the test stack. The AtlasConsumers are
// config/samples, given this machine's addresses; every test works in a namespace, topic,
// database and index of its own.
//
// `make test` starts the node and loads the image (hack/test.sh); to run these tests by
// hand, see the message of a missing ATLAS_TEST_NODE_* variable.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Environment of the node, exported by hack/test.sh.
const (
	envNodeKubeconfig = "ATLAS_TEST_NODE_KUBECONFIG"
	envNodeHostIP     = "ATLAS_TEST_NODE_HOST_IP"
	envNodeImage      = "ATLAS_TEST_NODE_IMAGE"
	envNodeProbeImage = "ATLAS_TEST_NODE_PROBE_IMAGE"
	// envNodeNextImage is the operator's image built as another version, for the upgrade test.
	envNodeNextImage = "ATLAS_TEST_NODE_NEXT_IMAGE"
	howToGetNode     = "start a node with `eval \"$(hack/node.sh start /tmp/atlas-node)\"` (as root), " +
		"load the image with `make image build-installer && hack/node.sh load /tmp/atlas-node dist/atlas-image.tar`, start the test stack " +
		"with ATLAS_NODE_HOST_IP set (so pods reach it), and export " + envNodeKubeconfig + "=$KUBECONFIG " +
		envNodeHostIP + "=$ATLAS_NODE_HOST_IP " + envNodeImage + "=atlas-operator:dev " + envNodeProbeImage + "=$ATLAS_NODE_PAUSE_IMAGE"
)

// The operator as dist/install.yaml installs it.
const (
	operatorNamespace  = "atlas-system"
	operatorDeployment = "atlas-controller-manager"
)

// cluster is the node and the operator managing it, shared by the package's tests.
type cluster struct {
	kubeconfig string
	hostIP     string // the host as pods reach it
	image      string
	probeImage string // hack/pause, which also GETs URLs and serves HTTP (--get, --serve)
	kubectlBin string
	client     client.Client
}

var shared struct {
	connect, install       sync.Once
	c                      *cluster
	connectErr, installErr error
}

// theNode returns the node, with or without an operator on it (the Helm chart's tests
// install their own before the shared one is installed).
func theNode(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{
		kubeconfig: infra.Require(t, envNodeKubeconfig, "Kubernetes node", howToGetNode),
		hostIP:     infra.Require(t, envNodeHostIP, "Kubernetes node", howToGetNode),
		image:      infra.Require(t, envNodeImage, "image loaded on the node", howToGetNode),
		probeImage: infra.Require(t, envNodeProbeImage, "probe image on the node", howToGetNode),
		kubectlBin: filepath.Join(infra.Require(t, infra.EnvKubebuilderAssets, "kubectl", "run `export KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)`"), "kubectl"),
	}
	shared.connect.Do(func() { shared.c, shared.connectErr = c, c.connect() })
	if shared.connectErr != nil {
		t.Fatalf("connect to the node: %v", shared.connectErr)
	}
	return shared.c
}

// theCluster returns the node with the operator installed from dist/install.yaml and
// running, installing it on first use.
func theCluster(t testing.TB) *cluster {
	t.Helper()
	c := theNode(t)
	root := infra.RepoRoot(t)
	shared.install.Do(func() { shared.installErr = c.install(root) })
	if shared.installErr != nil {
		t.Fatalf("install the operator on the node: %v", shared.installErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectlErr(nil, "-n", operatorNamespace, "logs", "deploy/"+operatorDeployment, "--tail", "40")
			t.Logf("operator log (last lines):\n%s", out)
		}
	})
	return c
}

// connect makes the cluster's API client.
func (c *cluster) connect() error {
	// controller-runtime's client logs only its own warnings, which the tests do not read;
	// without a logger it prints a stack trace the first time.
	ctrllog.SetLogger(logr.Discard())
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", c.kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := atlasv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	c.client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// install applies dist/install.yaml as a user does (`make build-installer` wrote it with
// this image) and waits until the operator's Deployment is available and the CRD
// established.
func (c *cluster) install(root string) error {
	installer := filepath.Join(root, "dist", "install.yaml")
	raw, err := os.ReadFile(installer)
	if err != nil {
		return fmt.Errorf("%w (make build-installer writes it)", err)
	}
	if !bytes.Contains(raw, []byte("image: "+c.image)) {
		return fmt.Errorf("%s does not run the image %s loaded on the node: make build-installer IMG=%s", installer, c.image, c.image)
	}
	if out, err := c.kubectlErr(nil, "apply", "--server-side", "-f", installer); err != nil {
		return fmt.Errorf("kubectl apply -f %s: %w: %s", installer, err, out)
	}
	if out, err := c.kubectlErr(nil, "wait", "--for=condition=Established", "crd/atlasconsumers.events.atlas.io", "--timeout=30s"); err != nil {
		return fmt.Errorf("CRD not established: %w: %s", err, out)
	}
	if out, err := c.kubectlErr(nil, "-n", operatorNamespace, "rollout", "status", "deploy/"+operatorDeployment, "--timeout=120s"); err != nil {
		pods, _ := c.kubectlErr(nil, "-n", operatorNamespace, "describe", "pods")
		return fmt.Errorf("the operator did not become available: %w: %s\n%s", err, out, pods)
	}
	return nil
}

// kubectl runs the real kubectl against the node and returns its standard output; it
// fails the test when kubectl fails.
func (c *cluster) kubectl(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	out, err := c.kubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) kubectlErr(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// system is a test's own slice of the whole system: a namespace on the node, a topic of
// six partitions (and its dead-letter topic), a migrated database and a search index,
// with the Secrets the samples reference.
type system struct {
	*cluster
	ns        string
	topic     string
	dsn       string // as the test reaches the database
	pool      *pgxpool.Pool
	podDSN    string // as pods reach it
	index     string
	searchURL string // as pods reach the search server
}

const partitions = 6

func newSystem(t testing.TB) *system {
	t.Helper()
	return newSystemOn(t, theCluster(t))
}

// newSystemOn makes a system on the cluster c, whichever operator manages it.
func newSystemOn(t testing.TB, c *cluster) *system {
	t.Helper()
	s := &system{cluster: c}
	s.ns = strings.ReplaceAll(infra.UniqueName(t, "e2e", 40), "_", "-")
	s.topic = infra.NewTopic(t, partitions)
	infra.CreateTopic(t, s.topic+".dlq", 1)
	s.dsn = infra.NewDatabase(t)
	s.pool = infra.NewPoolFor(t, s.dsn)
	s.podDSN = withHost(t, s.dsn, c.hostIP)
	s.index = infra.NewIndexName(t)
	infra.DeleteIndexAfter(t, s.index+"-v1") // the versioned index behind the alias
	s.searchURL = withHost(t, infra.SearchURL(t), c.hostIP)
	// The items table exists before any pod runs, as in production (the Atlas API owns it);
	// the pods' init containers find the schema current.
	m, err := migrations.Open(s.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	ctx := context.Background()
	if err := c.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("namespace %s at the end:\n%s", s.ns, c.kubectl(t, nil, "-n", s.ns, "get", "ac,deploy,pods,events", "-o", "wide"))
			t.Logf("consumer logs:\n%s", s.podLogs(t))
		}
		// pods go with the namespace; the test's database and topic are dropped after
		_ = c.client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}})
	})
	for _, sec := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "atlas-postgres"}, StringData: map[string]string{"dsn": s.podDSN}},
		// the test's search server runs without security: an empty credentials Secret
		{ObjectMeta: metav1.ObjectMeta{Name: "atlas-search"}},
	} {
		sec.Namespace = s.ns
		if err := c.client.Create(ctx, sec); err != nil {
			t.Fatalf("create Secret %s: %v", sec.Name, err)
		}
	}
	return s
}

// withHost returns the URL with its host (not its port) replaced.
func withHost(t testing.TB, raw, host string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	u.Host = host + ":" + u.Port()
	return u.String()
}

// applySample applies config/samples/events_v1alpha1_atlasconsumer_<name>.yaml with the
// kubectl, given this system's addresses, its own consumer group and index, and the
// fields in set (dotted paths under spec, e.g. "autoscaling.lagPerReplica"; nil removes one).
func (s *system) applySample(t testing.TB, name string, set map[string]any) {
	t.Helper()
	doc, err := json.Marshal(s.sample(t, name, set))
	if err != nil {
		t.Fatal(err)
	}
	s.kubectl(t, doc, "-n", s.ns, "apply", "--server-side", "-f", "-")
}

// sample is config/samples/events_v1alpha1_atlasconsumer_<name>.yaml as applySample
// applies it.
func (s *system) sample(t testing.TB, name string, set map[string]any) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(infra.RepoRoot(t), "config", "samples", "events_v1alpha1_atlasconsumer_"+name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	fields := map[string]any{
		"kafka.bootstrapServers": infra.KafkaBrokers(t),
		"kafka.topic":            s.topic,
		"kafka.groupID":          s.group(name),
	}
	if name == "indexer" {
		fields["elasticsearch.addresses"] = []any{s.searchURL}
		if infra.DefaultSearch.OpenSearch {
			fields["elasticsearch.openSearch"] = true
		}
		fields["elasticsearch.index"] = s.index
	}
	for k, v := range set {
		fields[k] = v
	}
	for path, v := range fields {
		keys := append([]string{"spec"}, strings.Split(path, ".")...)
		if v == nil {
			unstructured.RemoveNestedField(obj.Object, keys...)
			continue
		}
		if strs, ok := v.([]string); ok {
			v = toAny(strs)
		}
		if err := unstructured.SetNestedField(obj.Object, v, keys...); err != nil {
			t.Fatalf("set spec.%s: %v", path, err)
		}
	}
	return obj.Object
}

func toAny(strs []string) []any {
	out := make([]any, len(strs))
	for i, s := range strs {
		out[i] = s
	}
	return out
}

// produce publishes n generated events to the system's topic with `atlas produce
// --generate --apply-items` (which writes each item change to the items table first, as
// the Atlas API does), at most rate events/s (0: as fast as it can). It returns when
// every event is published.
func (s *system) produce(t testing.TB, n int, rate int) {
	t.Helper()
	if err := s.produceCmd(t, n, rate).Run(); err != nil {
		t.Fatalf("atlas produce %d events: %v", n, err)
	}
}

func (s *system) produceCmd(t testing.TB, n int, rate int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(infra.AtlasBinary(t), "produce", "--kafka-brokers", strings.Join(infra.KafkaBrokers(t), ","),
		"--topic", s.topic, "--generate", fmt.Sprint(n), "--rate", fmt.Sprint(rate), "--apply-items", "--progress", "never")
	cmd.Env = append(os.Environ(), "ATLAS_POSTGRES_DSN="+s.dsn)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

// auditRows returns the number of rows of audit_events.
func (s *system) auditRows(t testing.TB) int64 {
	t.Helper()
	var rows int64
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&rows); err != nil {
		t.Fatalf("count audit_events: %v", err)
	}
	return rows
}

// waitAudited waits until audit_events holds want rows, then checks they are one per
// record of the topic: a row for every (partition, offset), none missing. (event_id is the
// table's primary key, so no event can be there twice.)
func (s *system) waitAudited(t testing.TB, want int64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "every event audited", func() error {
		if rows := s.auditRows(t); rows != want {
			return fmt.Errorf("%d rows, want %d", rows, want)
		}
		return nil
	})
	var offsets int64
	if err := s.pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM audit_events WHERE kafka_topic = $1`, s.topic).Scan(&offsets); err != nil {
		t.Fatal(err)
	}
	if published := infra.Published(t, s.topic); offsets != want || published != want {
		t.Fatalf("audit rows come from %d distinct records of the topic, which holds %d; want %d", offsets, published, want)
	}
}

// waitIndexed waits until the index holds exactly the live items of the table.
func (s *system) waitIndexed(t testing.TB, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the index equals the items table", func() error {
		if diff := infra.IndexDiff(t, s.pool, s.index); diff != "" {
			return fmt.Errorf("%s", diff)
		}
		return nil
	})
}

// group is the consumer group of the system's AtlasConsumer name.
func (s *system) group(name string) string { return "atlas." + s.ns + "." + name }

// waitCommitted waits until the consumer's group has committed every record of the topic.
func (s *system) waitCommitted(t testing.TB, name string) {
	t.Helper()
	eventually(t, time.Minute, name+" committed everything", func() error {
		if lag := infra.GroupLag(t, s.group(name), s.topic); lag != 0 {
			return fmt.Errorf("group lag %d", lag)
		}
		return nil
	})
}

// consumer returns the AtlasConsumer as the API server has it.
func (s *system) consumer(t testing.TB, name string) *atlasv1alpha1.AtlasConsumer {
	t.Helper()
	ac := &atlasv1alpha1.AtlasConsumer{}
	if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, ac); err != nil {
		t.Fatalf("get AtlasConsumer %s: %v", name, err)
	}
	return ac
}

// pods returns the consumer's pods (by the selector its status publishes for the scale
// subresource), terminating ones included.
func (s *system) pods(t testing.TB, name string) []corev1.Pod {
	t.Helper()
	ac := s.consumer(t, name)
	if ac.Status.Selector == "" {
		return nil
	}
	sel, err := labels.Parse(ac.Status.Selector)
	if err != nil {
		t.Fatalf("status.selector %q: %v", ac.Status.Selector, err)
	}
	var list corev1.PodList
	if err := s.client.List(context.Background(), &list, client.InNamespace(s.ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitRunning waits until the consumer has exactly n pods, each Ready, and its
// Deployment and status agree.
func (s *system) waitRunning(t testing.TB, name string, n int32, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s runs %d ready pods", name, n), func() error {
		var dep appsv1.Deployment
		if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: name}, &dep); err != nil {
			return err
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != n || dep.Status.ReadyReplicas != n || dep.Status.Replicas != n {
			return fmt.Errorf("Deployment wants %v replicas, has %d, %d ready", ptrString(dep.Spec.Replicas), dep.Status.Replicas, dep.Status.ReadyReplicas)
		}
		ready := 0
		pods := s.pods(t, name)
		for _, p := range pods {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready++
			}
		}
		if len(pods) != int(n) || ready != int(n) {
			return fmt.Errorf("%d pods, %d ready", len(pods), ready)
		}
		if ac := s.consumer(t, name); ac.Status.ReadyReplicas != n {
			return fmt.Errorf("status.readyReplicas %d", ac.Status.ReadyReplicas)
		}
		return nil
	})
}

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podLogs returns the last lines of every consumer container's log in the namespace.
func (s *system) podLogs(t testing.TB) string {
	t.Helper()
	out, _ := s.kubectlErr(nil, "-n", s.ns, "logs", "-l", "app.kubernetes.io/name=atlas-consumer", "--all-containers", "--prefix", "--tail", "15")
	return out
}

// eventually polls cond every 250ms until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	infra.Eventually(t, timeout, 250*time.Millisecond, what, cond)
}
