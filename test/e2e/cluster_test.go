package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The node is a complete cluster: kube-proxy routes ClusterIPs and CoreDNS resolves
// cluster names. A pod reaches the API server at https://kubernetes.default.svc with its
// ServiceAccount token (the way the operator's pod does), and another pod through a
// Service by its short name and by its full name.
func TestNodeRoutesServicesAndResolvesClusterNames(t *testing.T) {
	c := theCluster(t)
	ns := c.namespace(t, "net")
	c.applyJSON(t, ns, c.probePod("web", []string{"--serve", ":8080"}, corev1.RestartPolicyAlways, map[string]string{"app": "web"}))
	c.applyJSON(t, ns, map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"selector": map[string]any{"app": "web"}, "ports": []any{map[string]any{"port": 80, "targetPort": 8080}}},
	})
	c.kubectl(t, nil, "-n", ns, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	// kube-proxy programs the Service a moment after the pod is Ready (until then its
	// ClusterIP refuses connections): wait for that from the host, then probe from pods.
	clusterIP := strings.TrimSpace(c.kubectl(t, nil, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
	eventually(t, 30*time.Second, "kube-proxy routes the Service's ClusterIP", func() error {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + clusterIP + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	sa := "/var/run/secrets/kubernetes.io/serviceaccount/"
	for name, args := range map[string][]string{
		"api-server":      {"--get", "https://kubernetes.default.svc/api", "--token-file", sa + "token", "--ca-file", sa + "ca.crt"},
		"service-short":   {"--get", "http://web/"},
		"service-full":    {"--get", "http://web." + ns + ".svc.cluster.local/"},
		"api-server-full": {"--get", "https://kubernetes.default.svc.cluster.local/version", "--ca-file", sa + "ca.crt"},
	} {
		c.applyJSON(t, ns, c.probePod(name, args, corev1.RestartPolicyNever, nil))
	}
	for _, name := range []string{"api-server", "service-short", "service-full", "api-server-full"} {
		phase := c.podFinished(t, ns, name, time.Minute)
		out := c.kubectl(t, nil, "-n", ns, "logs", name)
		if phase != corev1.PodSucceeded {
			t.Errorf("pod %s %s:\n%s", name, phase, out)
			continue
		}
		t.Logf("%s: %s", name, strings.TrimSpace(out))
	}
}

// The operator is a pod of its own Deployment, with its own ServiceAccount and nothing
// more than dist/install.yaml grants (not cluster-admin), and the consumer pods it makes
// carry no ServiceAccount token (they never call the API).
func TestOperatorRunsInTheClusterWithItsOwnPermissions(t *testing.T) {
	s := newSystem(t)
	sa := "system:serviceaccount:" + operatorNamespace + ":" + operatorDeployment
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "deployments", "-n", s.ns}, "yes"},
		{[]string{"list", "secrets", "-n", s.ns}, "yes"},
		{[]string{"patch", "atlasconsumers", "--subresource=status", "-n", s.ns}, "yes"},
		{[]string{"create", "clusterrolebindings"}, "no"},
		{[]string{"delete", "secrets", "-n", s.ns}, "no"},
		{[]string{"create", "pods", "-n", s.ns}, "no"},
		{[]string{"update", "atlasconsumers", "-n", s.ns}, "no"}, // it never writes the spec
	} {
		out, _ := s.kubectlErr(nil, append([]string{"auth", "can-i", "--as", sa}, check.args...)...)
		if got, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); got != check.want { // (a warning may follow)
			t.Errorf("kubectl auth can-i --as %s %s: %q, want %q", sa, strings.Join(check.args, " "), got, check.want)
		}
	}
	var pods corev1.PodList
	if err := s.client.List(context.Background(), &pods, client.InNamespace(operatorNamespace)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Spec.ServiceAccountName != operatorDeployment || pods.Items[0].Spec.Containers[0].Image != s.image {
		t.Fatalf("operator pods: %d; want one running %s as %s", len(pods.Items), s.image, operatorDeployment)
	}

	s.applySample(t, "audit", nil)
	s.waitRunning(t, "audit", 2, 2*time.Minute)
	for _, p := range s.pods(t, "audit") {
		if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
			t.Errorf("consumer pod %s: automountServiceAccountToken %v, want false", p.Name, p.Spec.AutomountServiceAccountToken)
		}
		for _, ctr := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			for _, m := range ctr.VolumeMounts {
				if strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io") {
					t.Errorf("consumer pod %s container %s mounts %s", p.Name, ctr.Name, m.MountPath)
				}
			}
		}
	}
}

// The operator's /metrics is HTTPS with authentication and authorization against the API
// server: a ServiceAccount bound to the metrics-reader ClusterRole scrapes it (200), one
// without the binding is refused (403), and no token at all is unauthorized (401).
func TestOperatorMetricsNeedAuthorization(t *testing.T) {
	c := theCluster(t)
	ns := c.namespace(t, "scrape")
	c.kubectl(t, nil, "-n", ns, "create", "serviceaccount", "scraper")
	c.kubectl(t, nil, "-n", ns, "create", "serviceaccount", "stranger")
	binding := "e2e-metrics-" + ns
	c.kubectl(t, nil, "create", "clusterrolebinding", binding, "--clusterrole", "atlas-metrics-reader", "--serviceaccount", ns+":scraper")
	t.Cleanup(func() { _, _ = c.kubectlErr(nil, "delete", "clusterrolebinding", binding) })
	svc := c.kubectl(t, nil, "-n", operatorNamespace, "get", "service", "atlas-controller-manager-metrics-service", "-o", "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}")
	url := "https://" + strings.TrimSpace(svc) + "/metrics"
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// The metrics server's certificate is self-signed; what is tested is who may read.
		hc := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body)
	}
	token := func(sa string) string {
		return strings.TrimSpace(c.kubectl(t, nil, "-n", ns, "create", "token", sa, "--duration", "10m"))
	}
	scraper, stranger := token("scraper"), token("stranger")
	eventually(t, time.Minute, "the metrics reader scrapes the operator", func() error {
		code, body := get(scraper)
		if code != http.StatusOK || !strings.Contains(body, "atlas_operator_") {
			return fmt.Errorf("%s: %d %.200s", url, code, body)
		}
		return nil
	})
	if code, body := get(stranger); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without the metrics-reader role: %d %.200s, want 403", code, body)
	}
	if code, body := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d %.200s, want 401", code, body)
	}
}

// namespace creates a namespace for the test, removed when it ends.
func (c *cluster) namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := strings.ReplaceAll(infra.UniqueName(t, prefix, 40), "_", "-")
	if err := c.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectlErr(nil, "-n", ns, "get", "all,events", "-o", "wide")
			t.Logf("namespace %s at the end:\n%s", ns, out)
		}
		_ = c.client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	return ns
}

// probePod is a Pod running the node's probe image (hack/pause) with args, under the
// restricted Pod Security Standard.
func (c *cluster) probePod(name string, args []string, restart corev1.RestartPolicy, labels map[string]string) map[string]any {
	container := map[string]any{
		"name": "probe", "image": c.probeImage, "imagePullPolicy": "Never", "args": args,
		"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
			"runAsNonRoot": true, "capabilities": map[string]any{"drop": []any{"ALL"}}},
	}
	if restart == corev1.RestartPolicyAlways {
		container["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/", "port": 8080}, "periodSeconds": 1}
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name, "labels": labels},
		"spec": map[string]any{
			"restartPolicy":   string(restart),
			"securityContext": map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
			"containers":      []any{container},
		},
	}
}

// applyJSON applies an object in the namespace with the real kubectl.
func (c *cluster) applyJSON(t testing.TB, ns string, obj map[string]any) {
	t.Helper()
	doc, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, doc, "-n", ns, "apply", "--server-side", "-f", "-")
}

// podFinished waits until the pod Succeeded or Failed and returns which.
func (c *cluster) podFinished(t testing.TB, ns, name string, timeout time.Duration) corev1.PodPhase {
	t.Helper()
	var phase corev1.PodPhase
	eventually(t, timeout, "pod "+name+" finishes", func() error {
		var p corev1.Pod
		if err := c.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", phase)
		}
		return nil
	})
	return phase
}
