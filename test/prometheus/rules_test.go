// Package prometheus_test checks the shipped monitoring with the real Prometheus tools:
// promtool runs the alert rules' unit tests, and parses every PromQL expression of the
// Grafana dashboard. (test/e2e evaluates both against a real Prometheus scraping the
// operator and the consumers.)
package prometheus_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// promtool check rules and promtool test rules on config/prometheus: the rules are valid,
// and every alert's unit tests pass.
func TestAlertRulesPassTheirUnitTests(t *testing.T) {
	t.Parallel()
	promtool := infra.Promtool(t)
	dir := filepath.Join(infra.RepoRoot(t), "config", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
}

// Every alert of alerts.yaml has a unit test in which it fires, and one in which it does not.
func TestEveryAlertIsUnitTested(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infra.RepoRoot(t), "config", "prometheus")
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readYAML(t, filepath.Join(dir, "alerts.yaml"), &rules)
	readYAML(t, filepath.Join(dir, "alerts_test.yaml"), &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: a test where it fires %v, one where it does not %v; want both", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	if n < 9 {
		t.Fatalf("%d alerts in alerts.yaml, want the 9 the README lists", n)
	}
}

// Every query of the Grafana dashboard parses with Prometheus's own parser (promtool
// checks them as recording rules).
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	queries := infra.DashboardQueries(t, "config/grafana/atlas-consumers.json", ".*", "1m")
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, q := range queries {
		expr, err := yaml.Marshal(q.Expr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "  - record: dashboard:query_%d\n    expr: %s\n", i, strings.TrimSpace(string(expr)))
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(infra.Promtool(t), "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d queries: %v\n%s\n%s", len(queries), err, out, rules.String())
	}
	t.Logf("%d dashboard queries parse: %s", len(queries), strings.TrimSpace(string(out)))
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
