package consumer_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestIndexerTrustsAPrivateCA runs the indexer against a real OpenSearch serving HTTPS with a
// certificate of a self-signed CA and demanding a client certificate: refused without the CA,
// refused with the CA but no client certificate, working with both, and working without
// verification (--elasticsearch-tls-insecure-skip-verify) only with a loud warning.
func TestIndexerTrustsAPrivateCA(t *testing.T) {
	t.Parallel()
	engine := infra.StartTLSOpenSearch(t, "")
	s := newIndexSetupOn(t, engine, 1)
	url := engine.URL(t)
	tls := engine.TLS
	opensearch := "--" + names.FlagElasticsearchOpenSearch
	flag := func(name, value string) []string { return []string{"--" + name, value} }
	caFlag := flag(names.FlagElasticsearchTLSCAFile, tls.CA)
	certFlags := append(flag(names.FlagElasticsearchTLSCertFile, tls.Cert), flag(names.FlagElasticsearchTLSKeyFile, tls.Key)...)

	envs := createdItems(t, 1801, 40)
	s.applyToItems(t, envs, nil)
	s.produce(t, envs)

	// the indexer with only these TLS flags (startIndexerAt would add all of the engine's)
	start := func(name, group string, args ...string) *consumerProc {
		t.Helper()
		return s.startMode(t, "indexer", name, group, append([]string{"--" + names.FlagElasticsearchAddresses, url,
			"--" + names.FlagElasticsearchIndex, s.alias, opensearch}, args...)...)
	}
	refused := func(name string, why []string, args ...string) {
		t.Helper()
		c := start(name, "tls-"+name, args...)
		if r := c.watchNotReadyBecause(15*time.Second, "elasticsearch"); r == "" {
			t.Fatalf("%s: /readyz never answered 503 naming the search server\n%s", name, c.tail())
		}
		deadline := time.Now().Add(30 * time.Second)
		for !containsAny(c.tail(), why) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the log never said why (%q)\n%s", name, why, c.tail())
			}
			time.Sleep(250 * time.Millisecond)
		}
		// it never got as far as creating the index
		es := s.search(t)
		resp, err := es.Indices.Exists([]string{s.alias})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: HEAD %s answered %s, want 404: the refused indexer reached the server", name, s.alias, resp.Status())
		}
		c.kill()
	}
	// the system roots do not know the test CA
	refused("no-ca", []string{"certificate signed by unknown authority"})
	// the server demands a client certificate
	refused("no-client-cert", []string{"bad certificate", "certificate required"}, caFlag...)

	c := start("ca-and-cert", "tls-ca-and-cert", append(caFlag, certFlags...)...)
	s.waitIndexEqualsTable(t, 90*time.Second, c)
	c.stop()
	if strings.Contains(c.tail(), "VERIFICATION") {
		t.Fatalf("a verifying indexer warned about verification:\n%s", c.tail())
	}

	more := createdItems(t, 1802, 20)
	s.applyToItems(t, more, nil)
	s.produce(t, more)
	insecure := start("insecure", "tls-ca-and-cert", append([]string{"--" + names.FlagElasticsearchTLSInsecure}, certFlags...)...)
	s.waitIndexEqualsTable(t, 90*time.Second, insecure)
	if !strings.Contains(insecure.tail(), `"level":"WARN","msg":"TLS VERIFICATION OF THE SEARCH SERVER IS OFF`) {
		t.Fatalf("--%s gave no warning:\n%s", names.FlagElasticsearchTLSInsecure, insecure.tail())
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
