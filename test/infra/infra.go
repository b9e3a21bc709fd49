// Package infra gives tests REAL components: a Postgres database, Kafka topics and
// consumer groups on an Apache Kafka broker, an Elasticsearch-compatible search server
// and a Kubernetes API server (envtest). `make test` (hack/test.sh) starts the servers
// and exports their addresses; each helper gives the calling test its own isolated
// database, topic, group or index and removes it when the test ends.
//
// A missing component FAILS the test with a message saying how to get it; nothing is
// skipped and nothing is faked.
package infra

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Environment variables the helpers read. hack/test.sh sets all of them; set one
// yourself to point the tests at an existing server instead.
const (
	EnvPostgresURL       = "ATLAS_TEST_POSTGRES_URL"
	EnvKafkaBrokers      = "ATLAS_TEST_KAFKA_BROKERS"
	EnvElasticsearchURL  = "ATLAS_TEST_ELASTICSEARCH_URL"
	EnvOpenSearchURL     = "ATLAS_TEST_OPENSEARCH_URL"
	EnvOpenSearch3URL    = "ATLAS_TEST_OPENSEARCH3_URL"
	EnvKubebuilderAssets = "KUBEBUILDER_ASSETS"
)

// Require returns the environment variable or fails the test saying how to get it.
func Require(t testing.TB, name, what, how string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		t.Fatalf("%s is not set, so this test has no %s to talk to.\n"+
			"Run the suite with `make test`, which starts every component it needs, or %s.", name, what, how)
	}
	return v
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName returns a lowercase name derived from the test's name plus a random
// suffix, made of [a-z0-9_] and at most max characters long.
func UniqueName(t testing.TB, prefix string, max int) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	suffix := hex.EncodeToString(b[:])
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	room := max - len(prefix) - len(suffix) - 2
	if room < 0 {
		room = 0
	}
	if len(base) > room {
		base = base[:room]
	}
	return prefix + "_" + base + "_" + suffix
}

// RepoRoot returns the repository's root directory (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test support package")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above " + file)
		}
		dir = parent
	}
}
