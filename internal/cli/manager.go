package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/atlas-platform/atlas-operator/internal/operator"
)

func newManagerCommand() *cobra.Command {
	opts := operator.Options{}
	var kubeconfig, logLevel string
	var qps float32
	var burst int
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the operator: reconcile AtlasConsumer resources into consumer Deployments",
		Long: `manager runs the AtlasConsumer controller: every AtlasConsumer becomes a consumer
Deployment (with a metrics Service and a PodDisruptionBudget), scaled by consumer-group lag
when spec.autoscaling is set.

It reaches the cluster from inside a pod, or with --kubeconfig / KUBECONFIG / ~/.kube/config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
			if err := opts.Validate(); err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = qps, burst
			if opts.LeaderElection && opts.LeaderElectionNamespace == "" {
				opts.LeaderElectionNamespace = os.Getenv("POD_NAMESPACE")
			}
			mgr, err := operator.New(cmd.Context(), cfg, opts)
			if err != nil {
				return err
			}
			log.Info("starting the operator", "consumer_image", opts.ConsumerImage, "namespaces", opts.WatchNamespaces, "leader_election", opts.LeaderElection)
			if err := mgr.Start(cmd.Context()); err != nil {
				return fmt.Errorf("operator: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.ConsumerImage, "consumer-image", "", "image of consumer pods when an AtlasConsumer sets none: the operator's own image (required)")
	fs.StringSliceVar(&opts.WatchNamespaces, "watch-namespaces", nil, "namespaces to watch, comma-separated (default: all)")
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8443", `address serving /metrics ("0" disables it)`)
	fs.BoolVar(&opts.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to authenticated and authorized clients only")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", `address serving /healthz and /readyz ("0" disables them)`)
	fs.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader, so only one operator replica is active")
	fs.StringVar(&opts.LeaderElectionID, "leader-election-id", "atlas-operator.events.atlas.io", "name of the leader election Lease")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's namespace, from POD_NAMESPACE)")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 8, "AtlasConsumers reconciled at once")
	fs.DurationVar(&opts.LagTimeout, "lag-timeout", 10*time.Second, "time allowed for one read of a consumer group's lag")
	// Measured (make bench, the operator's cost curve): at 50/100, 500 new AtlasConsumers (three
	// writes each) waited on this limit, p99 18 s from creation to Deployment; at 200/400 the
	// API server's own write rate is the limit (p99 about 4 s on a 2-core test machine), and the
	// server's priority and fairness protects it from a busier client.
	fs.Float32Var(&qps, "kube-api-qps", 200, "requests per second to the Kubernetes API server (client-side limit)")
	fs.IntVar(&burst, "kube-api-burst", 400, "burst of requests to the Kubernetes API server above --kube-api-qps")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes configuration: %w", err)
	}
	return cfg, nil
}
