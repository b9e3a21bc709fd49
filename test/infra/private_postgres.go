package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PostgresServer is a PostgreSQL server of the calling test's own, for tests that stop
// and start the server (the shared one must stay up for the other tests).
type PostgresServer struct {
	t   testing.TB
	dir string
	// URL is the maintenance database's URL; it stays the same across Stop and Start.
	URL string
}

// StartPostgres starts a private server with hack/postgres.sh and stops and removes it
// when the test ends.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	PostgresURL(t) // a missing test stack fails here, with the how-to
	dir, err := os.MkdirTemp("", "atlas-pg-")
	if err != nil {
		t.Fatal(err)
	}
	// The server runs as the postgres OS user when the tests run as root: it must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{t: t, dir: filepath.Join(dir, "pg")}
	t.Cleanup(func() {
		s.run("stop")
		os.RemoveAll(dir)
	})
	s.URL = strings.TrimSpace(s.run("start"))
	return s
}

// Stop shuts the server down (fast mode: clients are disconnected).
func (s *PostgresServer) Stop() { s.t.Helper(); s.run("stop") }

// Start starts the stopped server again on the same port with the same data.
func (s *PostgresServer) Start() { s.t.Helper(); s.run("start") }

func (s *PostgresServer) run(action string) string {
	s.t.Helper()
	cmd := exec.Command("bash", filepath.Join(RepoRoot(s.t), "hack", "postgres.sh"), action, s.dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("hack/postgres.sh %s: %v\n%s", action, err, stderr.String())
	}
	return string(out)
}
