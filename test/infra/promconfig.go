package infra

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// PrometheusSetup says how a Prometheus outside the cluster (on the host, in test/e2e and
// `make demo`) runs the shipped monitoring.
type PrometheusSetup struct {
	// Kubeconfig is what service discovery reaches the API server with (in a pod, Prometheus
	// uses its ServiceAccount instead).
	Kubeconfig string
	// Namespaces limits discovery (all when empty).
	Namespaces []string
	// TokenFile holds a token allowed by the atlas-metrics-reader ClusterRole, for the
	// operator's HTTPS /metrics.
	TokenFile string
	// Interval is the scrape and rule evaluation interval.
	Interval string
	// QuickAlerts shortens every alert's `for:` to 10s and AtlasConsumerLagHigh's threshold to
	// 3,000 records, so that a test or a demo burst sees them fire (promtool tests the real ones).
	QuickAlerts bool
}

// PrometheusConfig returns a prometheus.yml with the jobs of config/prometheus/scrape.yaml
// and the rule file alerts.yaml it names (config/prometheus/alerts.yaml), from the repository
// at root.
func PrometheusConfig(root string, s PrometheusSetup) (config, alerts []byte, err error) {
	var scrape map[string]any
	if err := readYAML(filepath.Join(root, "config", "prometheus", "scrape.yaml"), &scrape); err != nil {
		return nil, nil, err
	}
	jobs, _ := scrape["scrape_configs"].([]any)
	if len(jobs) != 2 {
		return nil, nil, fmt.Errorf("config/prometheus/scrape.yaml: %d jobs, want the operator's and the consumers'", len(jobs))
	}
	for _, j := range jobs {
		job := j.(map[string]any)
		for _, sd := range job["kubernetes_sd_configs"].([]any) {
			sd := sd.(map[string]any)
			sd["kubeconfig_file"] = s.Kubeconfig
			if len(s.Namespaces) > 0 {
				names := make([]any, len(s.Namespaces))
				for i, n := range s.Namespaces {
					names[i] = n
				}
				sd["namespaces"] = map[string]any{"names": names}
			}
		}
		if auth, ok := job["authorization"].(map[string]any); ok {
			auth["credentials_file"] = s.TokenFile
		}
	}

	var rules map[string]any
	if err := readYAML(filepath.Join(root, "config", "prometheus", "alerts.yaml"), &rules); err != nil {
		return nil, nil, err
	}
	if s.QuickAlerts {
		thresholdSet := false
		for _, g := range rules["groups"].([]any) {
			for _, r := range g.(map[string]any)["rules"].([]any) {
				rule := r.(map[string]any)
				if _, ok := rule["for"]; ok {
					rule["for"] = "10s"
				}
				if rule["alert"] == "AtlasConsumerLagHigh" {
					expr := rule["expr"].(string)
					rule["expr"] = strings.Replace(expr, "> 100000", "> 3000", 1)
					thresholdSet = rule["expr"] != expr
				}
			}
		}
		if !thresholdSet {
			return nil, nil, fmt.Errorf("alerts.yaml: AtlasConsumerLagHigh no longer compares with > 100000; update PrometheusConfig")
		}
	}
	if config, err = yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": s.Interval, "evaluation_interval": s.Interval},
		"rule_files":     []any{"alerts.yaml"},
		"scrape_configs": jobs,
	}); err != nil {
		return nil, nil, err
	}
	if alerts, err = yaml.Marshal(rules); err != nil {
		return nil, nil, err
	}
	return config, alerts, nil
}

func readYAML(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
