package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The README's "Deploy to a cluster", run as written: every shell block between its
// `deploy:run` and `deploy:end` markers, in order, with this node's settings in place of
// the settings block (the image loaded on the node, a namespace of the test's own, the test
// stack's Kafka and a fresh database as pods reach them). It builds the image and the
// installer, installs the operator, creates the Secrets, applies an AtlasConsumer, watches
// it become Ready and scales it to three pods.
func TestTheReadmeDeploysAConsumer(t *testing.T) {
	c := theCluster(t)
	root := infra.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := readmeBlocks(t, string(readme))
	if !strings.Contains(steps, "kubectl apply --server-side -f dist/install.yaml") || !strings.Contains(steps, "create secret generic atlas-postgres") {
		t.Fatalf("the README's deploy blocks lost their install or Secret steps:\n%s", steps)
	}

	ns := strings.ReplaceAll(infra.UniqueName(t, "readme", 40), "_", "-")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectlErr(nil, "-n", ns, "get", "ac,deploy,pods,events", "-o", "wide")
			t.Logf("namespace %s at the end:\n%s", ns, out)
		}
		_, _ = c.kubectlErr(nil, "delete", "namespace", ns, "--wait=false")
	})
	podDSN := withHost(t, infra.NewDatabase(t), c.hostIP)
	// The README's consumer reads the default topic, which a user's Kafka has.
	infra.CreateTopic(t, "atlas.domain-events.v1", 3)
	infra.CreateTopic(t, "atlas.domain-events.v1.dlq", 1)
	// The block runs where the README's files are: the repository's dist/ and the PEM
	// files of the TLS Secret (placeholders; no consumer here uses TLS).
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "dist"), filepath.Join(work, "dist")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"kafka-ca.pem", "kafka-client.pem", "kafka-client-key.pem"} {
		if err := os.WriteFile(filepath.Join(work, f), []byte("-----BEGIN PLACEHOLDER-----\n-----END PLACEHOLDER-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	settings := strings.Join([]string{
		"export IMAGE=" + shellQuote(c.image),
		"export NS=" + shellQuote(ns),
		"export KAFKA_BROKERS=" + shellQuote(strings.Join(infra.KafkaBrokers(t), ",")),
		"export PG_DSN=" + shellQuote(podDSN),
		"export KUBECONFIG=" + shellQuote(c.kubeconfig),
		"export PATH=" + shellQuote(filepath.Dir(c.kubectlBin)) + ":$PATH",
		// the README's make commands run from the repository's root
		"make() { command make --no-print-directory -C " + shellQuote(root) + ` "$@"; }`,
	}, "\n")
	script := "set -euo pipefail\nset -x\n" + settings + "\n" + steps
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's deploy steps failed: %v\n%s", err, out)
	}
	t.Logf("the README's deploy steps:\n%s", tailLines(string(out), 30))
	if ready := strings.TrimSpace(c.kubectl(t, nil, "-n", ns, "get", "ac", "audit", "-o", "jsonpath={.status.readyReplicas}")); ready != "3" {
		t.Fatalf("after the README: audit has %s ready replicas, want 3", ready)
	}
}

var fence = regexp.MustCompile("(?s)```sh\n(.*?)```")

// readmeBlocks returns the shell blocks between each `<!-- deploy:run -->` and the next
// `<!-- deploy:end -->`, in order.
func readmeBlocks(t testing.TB, readme string) string {
	t.Helper()
	var b strings.Builder
	rest := readme
	for {
		i := strings.Index(rest, "<!-- deploy:run -->")
		if i < 0 {
			break
		}
		rest = rest[i:]
		j := strings.Index(rest, "<!-- deploy:end -->")
		if j < 0 {
			t.Fatal("README: a deploy:run marker without its deploy:end")
		}
		for _, m := range fence.FindAllStringSubmatch(rest[:j], -1) {
			b.WriteString(m[1])
			b.WriteString("\n")
		}
		rest = rest[j:]
	}
	if b.Len() == 0 {
		t.Fatal("README: no shell blocks between deploy:run and deploy:end markers")
	}
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
