// Command promconfig writes a prometheus.yml and its alerts.yaml for a Prometheus on the
// host of `make demo`: config/prometheus/scrape.yaml's jobs, discovering through the given
// kubeconfig, and config/prometheus/alerts.yaml with demo-time durations (test/infra's
// PrometheusConfig, which test/e2e uses too).
//
//	go run ./hack/promconfig --kubeconfig K --token-file T --namespaces a,b --out DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

func main() {
	var s infra.PrometheusSetup
	var namespaces, out string
	flag.StringVar(&s.Kubeconfig, "kubeconfig", "", "kubeconfig for Kubernetes service discovery (required)")
	flag.StringVar(&s.TokenFile, "token-file", "", "a token of the atlas-metrics-reader role, for the operator's /metrics (required)")
	flag.StringVar(&namespaces, "namespaces", "", "comma-separated namespaces to discover (all when empty)")
	flag.StringVar(&s.Interval, "interval", "5s", "scrape and evaluation interval")
	flag.BoolVar(&s.QuickAlerts, "quick-alerts", true, "alerts after 10s, lag threshold 3,000 (demo time)")
	flag.StringVar(&out, "out", "", "directory to write prometheus.yml and alerts.yaml into (required)")
	flag.Parse()
	if s.Kubeconfig == "" || s.TokenFile == "" || out == "" {
		fmt.Fprintln(os.Stderr, "promconfig: --kubeconfig, --token-file and --out are required")
		os.Exit(2)
	}
	if namespaces != "" {
		s.Namespaces = strings.Split(namespaces, ",")
	}
	config, alerts, err := infra.PrometheusConfig(".", s)
	if err == nil {
		err = os.WriteFile(filepath.Join(out, "prometheus.yml"), config, 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(out, "alerts.yaml"), alerts, 0o600)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "promconfig: %v\n", err)
		os.Exit(1)
	}
}
