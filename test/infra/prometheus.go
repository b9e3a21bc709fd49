package infra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvPrometheusDir is the directory of the prometheus and promtool binaries
// (hack/prometheus.sh prints it; hack/test.sh exports it).
const EnvPrometheusDir = "ATLAS_TEST_PROMETHEUS_DIR"

const howToGetPrometheus = "build Prometheus and promtool with `export " + EnvPrometheusDir + "=$(hack/prometheus.sh)`"

// Promtool is the path of the real promtool.
func Promtool(t testing.TB) string {
	t.Helper()
	return filepath.Join(Require(t, EnvPrometheusDir, "promtool", howToGetPrometheus), "promtool")
}

// DashboardQuery is one PromQL expression of a Grafana dashboard panel.
type DashboardQuery struct {
	Panel string // the panel's title
	Expr  string // with the dashboard's variables replaced
}

// DashboardQueries reads the Grafana dashboard at path (relative to the repository) and
// returns every panel's queries, with $namespace replaced by namespaceRegex and Grafana's
// $__rate_interval by rateInterval, as Grafana would send them to Prometheus.
func DashboardQueries(t testing.TB, path, namespaceRegex, rateInterval string) []DashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []DashboardQuery
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Fatalf("%s: panel %q has no query", path, p.Title)
		}
		for _, target := range p.Targets {
			expr := strings.NewReplacer("$namespace", namespaceRegex, "$__rate_interval", rateInterval).Replace(target.Expr)
			if strings.Contains(expr, "$") {
				t.Fatalf("%s: panel %q uses a variable this test does not know: %s", path, p.Title, target.Expr)
			}
			out = append(out, DashboardQuery{Panel: p.Title, Expr: expr})
		}
	}
	return out
}

// Prometheus is a real Prometheus server started for a test (stopped when it ends).
type Prometheus struct {
	URL string
	t   testing.TB
}

// StartPrometheus runs the real prometheus on host with config (prometheus.yml) and the
// rule files, written beside it under the names given, and waits until it is ready.
func StartPrometheus(t testing.TB, host string, config []byte, files map[string][]byte) *Prometheus {
	t.Helper()
	bin := filepath.Join(Require(t, EnvPrometheusDir, "prometheus", howToGetPrometheus), "prometheus")
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), config, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	p := &Prometheus{URL: "http://" + addr, t: t}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	})
	Eventually(t, 30*time.Second, 200*time.Millisecond, "prometheus ready", func() error {
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// Sample is one element of an instant query's result vector.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query runs an instant query and returns its result vector, or Prometheus's error (a
// PromQL parse error among them).
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	var res struct {
		ResultType string   `json:"resultType"`
		Result     []Sample `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &res); err != nil {
		return nil, err
	}
	if res.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", res.ResultType)
	}
	return res.Result, nil
}

// Alert is an alert as /api/v1/alerts lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// Alerts lists the pending and firing alerts.
func (p *Prometheus) Alerts() ([]Alert, error) {
	var res struct {
		Alerts []Alert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", &res)
	return res.Alerts, err
}

// Targets lists the active scrape targets' job, labels, health and last error.
func (p *Prometheus) Targets() ([]map[string]any, error) {
	var res struct {
		ActiveTargets []map[string]any `json:"activeTargets"`
	}
	err := p.get("/api/v1/targets?state=active", &res)
	return res.ActiveTargets, err
}

func (p *Prometheus) get(path string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: %s: %.200s", path, resp.Status, body)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, envelope.ErrorType, envelope.Error)
	}
	return json.NewDecoder(bytes.NewReader(envelope.Data)).Decode(data)
}
