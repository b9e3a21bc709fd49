// Package operator wires the AtlasConsumer controller into a controller-runtime
// manager: the cache (only the operator's own objects, Secrets as metadata), leader
// election, the secured metrics endpoint and the health probes. `atlas manager` runs it;
// tests start the same wiring against envtest.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// Options configure the operator.
type Options struct {
	// ConsumerImage is the image of consumer pods whose AtlasConsumer sets none: the
	// operator's own image, which carries both consumers.
	ConsumerImage string
	// WatchNamespaces limits the operator to these namespaces (all when empty).
	WatchNamespaces []string
	// MetricsAddr serves /metrics ("0" disables it); MetricsSecure serves it over HTTPS
	// for authenticated and authorized clients only.
	MetricsAddr   string
	MetricsSecure bool
	// ProbeAddr serves /healthz and /readyz ("0" disables them).
	ProbeAddr string
	// LeaderElection makes one replica of the operator active at a time.
	LeaderElection          bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// MaxConcurrentReconciles is how many AtlasConsumers are reconciled at once.
	MaxConcurrentReconciles int
	// LagTimeout bounds one read of a consumer group's lag.
	LagTimeout time.Duration
	// MetricsRegistry receives the operator's metrics (controller-runtime's registry
	// when nil, which the metrics endpoint serves).
	MetricsRegistry prometheus.Registerer
}

// Validate reports every unusable option.
func (o Options) Validate() error {
	var errs []error
	if o.ConsumerImage == "" {
		errs = append(errs, errors.New("--consumer-image is empty: give the operator's own image (config/manager sets ATLAS_CONSUMER_IMAGE from it)"))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-reconciles %d: want at least 1", o.MaxConcurrentReconciles))
	}
	if o.LeaderElection && o.LeaderElectionID == "" {
		errs = append(errs, errors.New("--leader-election-id is empty"))
	}
	return errors.Join(errs...)
}

// Scheme is the operator's scheme: the built-in types and AtlasConsumer.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := atlasv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds the manager with the AtlasConsumer controller; Start runs it.
func New(ctx context.Context, cfg *rest.Config, opts Options) (manager.Manager, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	metricsOpts := metricsserver.Options{BindAddress: opts.MetricsAddr, SecureServing: opts.MetricsSecure}
	if opts.MetricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOptions(opts.WatchNamespaces),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	reg := opts.MetricsRegistry
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	m, err := controllers.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	lag := &controllers.KafkaLagReader{Timeout: opts.LagTimeout}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		lag.Close()
		return nil
	})); err != nil {
		return nil, err
	}
	r := &controllers.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    scheme,
		Recorder:  mgr.GetEventRecorder(workload.ManagedBy),
		Image:     opts.ConsumerImage,
		Lag:       lag,
		Metrics:   m,
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}); err != nil {
		return nil, fmt.Errorf("set up the AtlasConsumer controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// cacheOptions keeps the cache small: the owned kinds only with the operator's label
// (a same-named foreign object is looked up directly), in the watched namespaces.
func cacheOptions(namespaces []string) cache.Options {
	ownedByOperator := labels.SelectorFromSet(labels.Set{workload.LabelManagedBy: workload.ManagedBy})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:            {Label: ownedByOperator},
		&corev1.Service{}:               {Label: ownedByOperator},
		&policyv1.PodDisruptionBudget{}: {Label: ownedByOperator},
		&networkingv1.NetworkPolicy{}:   {Label: ownedByOperator},
	}}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
