package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atlas-platform/atlas-operator/internal/tlsconfig"
)

// Server is a server of the calling test's own, started with a hack/ script, for tests
// that stop and start it (the shared servers must stay up for the other tests).
type Server struct {
	t      testing.TB
	script string
	dir    string
	// Addr is what the script printed: a Postgres URL or Kafka bootstrap host:port. It
	// stays the same across Stop and Start.
	Addr string
	// env is added to the script's environment.
	env []string
}

// StartPostgres starts a private PostgreSQL server (hack/postgres.sh); Addr is the
// maintenance database's URL.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	PostgresURL(t) // without the test stack, fail here with the how-to
	return startServer(t, "postgres.sh")
}

// StartKafka starts a private single-node Apache Kafka broker (hack/kafka.sh); Addr is
// its bootstrap address. env is added to the script's environment (for example
// ATLAS_KAFKA_SASL=OAUTHBEARER).
func StartKafka(t testing.TB, env ...string) *Server {
	t.Helper()
	KafkaBrokers(t) // without the test stack, fail here with the how-to
	return startServer(t, "kafka.sh", env...)
}

// StartTLSOpenSearch starts a private OpenSearch 2.19 node (hack/opensearch.sh with
// ATLAS_OPENSEARCH_TLS=1) whose REST API serves HTTPS with a certificate of a CA made for it
// and demands a client certificate of that CA. The engine returned carries the CA and the
// client certificate's files; its certificate also names hostIP when given (the node's
// address, for pods).
func StartTLSOpenSearch(t testing.TB, hostIP string) SearchEngine {
	t.Helper()
	OpenSearch2.URL(t) // without the test stack, fail here with the how-to
	env := []string{"ATLAS_OPENSEARCH_TLS=1", "ATLAS_OPENSEARCH_VERSION=2"}
	if hostIP != "" {
		env = append(env, "ATLAS_NODE_HOST_IP="+hostIP)
	}
	s := startServer(t, "opensearch.sh", env...)
	tls := filepath.Join(s.dir, "tls")
	e := OpenSearch2
	e.Name, e.url = "OpenSearch2TLS", s.Addr
	e.TLS = &tlsconfig.Files{CA: filepath.Join(tls, "ca.crt"), Cert: filepath.Join(tls, "client.crt"), Key: filepath.Join(tls, "client.key")}
	e.URL(t) // checks the server with the client certificate
	return e
}

func startServer(t testing.TB, script string, env ...string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "atlas-server-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as the postgres OS user when the tests run as root: it must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, script: script, dir: filepath.Join(dir, "server"), env: env}
	t.Cleanup(func() {
		s.run("stop")
		os.RemoveAll(dir)
	})
	s.Addr = strings.TrimSpace(s.run("start"))
	return s
}

// Stop shuts the server down (clients are disconnected).
func (s *Server) Stop() { s.t.Helper(); s.run("stop") }

// Crash stops a Postgres server at once, as a crash would (pg_ctl -m immediate): what
// its WAL buffers held and had not written is lost; Start recovers it.
func (s *Server) Crash() { s.t.Helper(); s.run("crash") }

// Start starts the stopped server again on the same port with the same data.
func (s *Server) Start() { s.t.Helper(); s.run("start") }

func (s *Server) run(action string) string {
	s.t.Helper()
	cmd := exec.Command("bash", filepath.Join(RepoRoot(s.t), "hack", s.script), action, s.dir)
	cmd.Env = append(os.Environ(), s.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("hack/%s %s: %v\n%s", s.script, action, err, stderr.String())
	}
	return string(out)
}
