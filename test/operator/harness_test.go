// Package operator_test runs the operator (the same wiring as `atlas manager`) against
// a real kube-apiserver and etcd (envtest), shared by the package's tests; every test
// works in a namespace of its own. envtest runs no controllers: tests write Deployment
// status themselves where a rollout matters.
package operator_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/internal/operator"
	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// testImage is the operator's "own image" in the tests.
const testImage = "registry.example/atlas-operator:test"

// shared is the control plane and operator every test of the package uses.
var shared struct {
	once    sync.Once
	err     error
	env     *kube.Env
	writes  *requestLog
	metrics *prometheus.Registry
	stop    func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// operatorEnv returns the shared envtest control plane with the operator running,
// starting both on first use.
func operatorEnv(t testing.TB) *kube.Env {
	t.Helper()
	infra.Require(t, infra.EnvKubebuilderAssets, "kube-apiserver and etcd", "build them with `export KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)`")
	shared.once.Do(func() { shared.err = startShared(infra.RepoRoot(t)) })
	if shared.err != nil {
		t.Fatalf("start envtest and the operator: %v", shared.err)
	}
	return shared.env
}

func startShared(root string) error {
	// The operator's own log, errors and warnings only, goes to the test output.
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	env, err := kube.StartEnv(root)
	if err != nil {
		return err
	}
	writes := &requestLog{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(writes.wrap)
	cfg.QPS, cfg.Burst = 200, 400 // the benchmark's 500 AtlasConsumers
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := operator.New(ctx, cfg, operator.Options{
		ConsumerImage:           testImage,
		MetricsAddr:             "0",
		ProbeAddr:               "0",
		MaxConcurrentReconciles: 4,
		LagTimeout:              3 * time.Second,
		MetricsRegistry:         reg,
	})
	if err != nil {
		cancel()
		_ = env.Stop()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	shared.env, shared.writes, shared.metrics = env, writes, reg
	shared.stop = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "operator:", err)
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	return nil
}

// requestLog records the operator's write requests (everything but GET, LIST and WATCH).
type requestLog struct {
	mu     sync.Mutex
	writes []string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			l.mu.Lock()
			l.writes = append(l.writes, req.Method+" "+req.URL.Path)
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// inNamespace returns the write requests so far into namespace ns.
func (l *requestLog) inNamespace(ns string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, w := range l.writes {
		if strings.Contains(w, "/namespaces/"+ns+"/") {
			out = append(out, w)
		}
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// newNamespace creates a namespace for the test.
func newNamespace(t testing.TB, env *kube.Env) string {
	t.Helper()
	name := strings.ReplaceAll(infra.UniqueName(t, "t", 50), "_", "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

// dsnSecret creates the Secret holding the Postgres DSN that consumers reference.
func dsnSecret(t testing.TB, env *kube.Env, ns, name, dsn string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"dsn": []byte(dsn)},
	}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatalf("create Secret %s: %v", name, err)
	}
	return s
}

// auditConsumer is a minimal valid audit AtlasConsumer referencing Secret "pg".
func auditConsumer(ns, name string) *atlasv1alpha1.AtlasConsumer {
	return &atlasv1alpha1.AtlasConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: atlasv1alpha1.AtlasConsumerSpec{
			Mode:  atlasv1alpha1.AtlasConsumerModeAudit,
			Kafka: atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"kafka-0.kafka:9092", "kafka-1.kafka:9092"}},
			Postgres: atlasv1alpha1.PostgresSpec{DSNSecretRef: corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "dsn"}},
			Replicas: ptr.To[int32](1),
		},
	}
}

// eventually polls cond every 100ms until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	infra.Eventually(t, timeout, 100*time.Millisecond, what, cond)
}

// get reads obj fresh from the API server.
func get(t testing.TB, env *kube.Env, obj client.Object) error {
	t.Helper()
	return env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
}

func repoFile(t testing.TB, parts ...string) string {
	t.Helper()
	return filepath.Join(append([]string{infra.RepoRoot(t)}, parts...)...)
}

// consumerNamespace is the usual start of a test: the shared operator, a namespace of
// the test's own and the Secret "pg" (key "dsn") that auditConsumer references.
func consumerNamespace(t testing.TB) (*kube.Env, string) {
	t.Helper()
	env := operatorEnv(t)
	ns := newNamespace(t, env)
	dsnSecret(t, env, ns, "pg", dsnValue)
	return env, ns
}

// waitDeployment waits until the operator has created the named Deployment.
func waitDeployment(t testing.TB, env *kube.Env, ns, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	eventually(t, timeoutCreate, "Deployment "+name+" created", func() error { return get(t, env, dep) })
	return dep
}

// waitReplicas waits until the Deployment asks for want replicas.
func waitReplicas(t testing.TB, env *kube.Env, dep *appsv1.Deployment, want int32, timeout time.Duration, what string) {
	t.Helper()
	eventually(t, timeout, what, func() error {
		if err := get(t, env, dep); err != nil {
			return err
		}
		if *dep.Spec.Replicas != want {
			return fmt.Errorf("replicas %d, want %d", *dep.Spec.Replicas, want)
		}
		return nil
	})
}
