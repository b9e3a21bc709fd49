package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// A real Prometheus, on the host, scrapes the operator and both consumers through
// config/prometheus/scrape.yaml (Kubernetes service discovery against the node, the
// operator's HTTPS metrics with a ServiceAccount bound to atlas-metrics-reader) and evaluates
// config/prometheus/alerts.yaml, with every `for:` at 10 s and the lag threshold at 3,000
// records so that a test can wait for them (promtool tests the real ones): the consumers'
// and the operator's series arrive with the AtlasConsumers' namespace; a burst fires
// AtlasConsumerLagHigh for the indexer (scaled up meanwhile), which resolves once the lag is
// worked off; a record that is not JSON fires AtlasConsumerDeadLetters; and every query of
// the Grafana dashboard returns data.
func TestPrometheusScrapesAlertsAndDashboard(t *testing.T) {
	s := newSystem(t)
	s.applySample(t, "audit", map[string]any{"replicas": int64(1)})
	s.applySample(t, "indexer", map[string]any{
		"batch.size":                         int64(10),
		"autoscaling.lagPerReplica":          int64(2_000),
		"autoscaling.pollInterval":           "5s",
		"autoscaling.scaleDownStabilization": "20s",
	})
	s.waitRunning(t, "audit", 1, 2*time.Minute)
	s.waitRunning(t, "indexer", 1, 2*time.Minute)
	prom := s.startPrometheus(t)

	eventually(t, 2*time.Minute, "Prometheus scrapes the operator and both consumers", func() error {
		for _, q := range []struct {
			expr string
			want int
		}{
			{`up{job="atlas-consumers", namespace="` + s.ns + `"} == 1`, 2},
			{`max(up{job="atlas-operator"}) == 1`, 1}, // (one or two replicas: only the leader's series below)
			{`atlas_consumer_records_consumed_total{namespace="` + s.ns + `"}`, 2},
			// honor_labels: the operator's series carry the AtlasConsumers' namespace
			{`atlas_operator_consumer_condition{namespace="` + s.ns + `", type="Ready", status="True"}`, 2},
		} {
			got, err := prom.Query(q.expr)
			if err != nil {
				return err
			}
			if len(got) != q.want {
				targets, _ := prom.Targets()
				return fmt.Errorf("%s: %d series, want %d (targets: %v)", q.expr, len(got), q.want, targets)
			}
		}
		return nil
	})

	// A burst: the indexer's lag (every partition's, measured by each pod every 5 s) stays
	// above 3,000 for more than 10 s, while lag scaling adds pods and moves partitions. 60,000
	// events: two pods at the 1,700 events/s each measured in CI drained 20,000 before the
	// alert's 10 s and Prometheus's scrape and evaluation intervals had passed (it never fired).
	s.produce(t, 60_000, 0)
	eventually(t, 3*time.Minute, "AtlasConsumerLagHigh fires for the indexer", func() error {
		return s.alertState(prom, "AtlasConsumerLagHigh", "indexer-metrics", "", "firing")
	})
	eventually(t, 4*time.Minute, "AtlasConsumerLagHigh resolves once the indexer caught up", func() error {
		if lag := infra.GroupLag(t, s.group("indexer"), s.topic); lag > 0 {
			return fmt.Errorf("group lag %d", lag)
		}
		return s.alertState(prom, "AtlasConsumerLagHigh", "indexer-metrics", "", "")
	})

	// A record that is not JSON goes to the dead-letter topic, and the alert says why.
	cl := infra.KafkaClient(t)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: s.topic, Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "AtlasConsumerDeadLetters fires for the audit consumer", func() error {
		return s.alertState(prom, "AtlasConsumerDeadLetters", "audit-metrics", "not-json", "firing")
	})

	// Every query of the Grafana dashboard returns data from the real series.
	for _, q := range infra.DashboardQueries(t, "config/grafana/atlas-consumers.json", s.ns, "1m") {
		got, err := prom.Query(q.Expr)
		if err != nil {
			t.Errorf("dashboard panel %q: %s: %v", q.Panel, q.Expr, err)
			continue
		}
		if len(got) == 0 {
			t.Errorf("dashboard panel %q: %s returned no data", q.Panel, q.Expr)
		}
	}
}

// alertState checks the alert for the service of the system's namespace (and reason, when
// given) is in state: "firing", "pending", or "" for absent (resolved).
func (s *system) alertState(prom *infra.Prometheus, name, service, reason, state string) error {
	alerts, err := prom.Alerts()
	if err != nil {
		return err
	}
	got := ""
	var all []string
	for _, a := range alerts {
		all = append(all, fmt.Sprintf("%s %v %s", a.Labels["alertname"], a.Labels, a.State))
		if a.Labels["alertname"] == name && a.Labels["namespace"] == s.ns && a.Labels["service"] == service &&
			(reason == "" || a.Labels["reason"] == reason) {
			got = a.State
		}
	}
	if got != state {
		return fmt.Errorf("%s for %s: %q, want %q; alerts: %v", name, service, got, state, all)
	}
	return nil
}

// startPrometheus runs a real Prometheus on the host with config/prometheus/scrape.yaml's
// jobs (discovering through this node's API server, in the system's and the operator's
// namespaces only) and alerts.yaml's rules, its `for:` shortened for the test.
func (s *system) startPrometheus(t *testing.T) *infra.Prometheus {
	t.Helper()
	// The operator's /metrics wants a token allowed by the metrics-reader ClusterRole.
	s.kubectl(t, nil, "-n", s.ns, "create", "serviceaccount", "prometheus")
	binding := "e2e-prometheus-" + s.ns
	s.kubectl(t, nil, "create", "clusterrolebinding", binding, "--clusterrole", "atlas-metrics-reader", "--serviceaccount", s.ns+":prometheus")
	t.Cleanup(func() { _, _ = s.kubectlErr(nil, "delete", "clusterrolebinding", binding) })
	tokenFile := filepath.Join(t.TempDir(), "token")
	token := strings.TrimSpace(s.kubectl(t, nil, "-n", s.ns, "create", "token", "prometheus", "--duration", "1h"))
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}

	config, alerts, err := infra.PrometheusConfig(infra.RepoRoot(t), infra.PrometheusSetup{
		Kubeconfig:  s.kubeconfig, // Prometheus runs on the host, not in a pod
		Namespaces:  []string{s.ns, operatorNamespace},
		TokenFile:   tokenFile,
		Interval:    "2s",
		QuickAlerts: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return infra.StartPrometheus(t, "127.0.0.1", config, map[string][]byte{"alerts.yaml": alerts})
}
