package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
}

// StartPostgres starts a private PostgreSQL server (hack/postgres.sh); Addr is the
// maintenance database's URL.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	PostgresURL(t) // without the test stack, fail here with the how-to
	return startServer(t, "postgres.sh")
}

// StartKafka starts a private single-node Apache Kafka broker (hack/kafka.sh); Addr is
// its bootstrap address.
func StartKafka(t testing.TB) *Server {
	t.Helper()
	KafkaBrokers(t) // without the test stack, fail here with the how-to
	return startServer(t, "kafka.sh")
}

func startServer(t testing.TB, script string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "atlas-server-")
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL runs as the postgres OS user when the tests run as root: it must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, script: script, dir: filepath.Join(dir, "server")}
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
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("hack/%s %s: %v\n%s", s.script, action, err, stderr.String())
	}
	return string(out)
}
