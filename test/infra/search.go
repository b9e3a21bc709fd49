package infra

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// SearchURL returns the URL of the test search server.
func SearchURL(t testing.TB) string {
	t.Helper()
	return Require(t, EnvElasticsearchURL, "Elasticsearch-compatible search server",
		"start a real OpenSearch node with `hack/opensearch.sh start DIR` (jars from Maven Central, needs Java 17 and mvn) and export "+EnvElasticsearchURL+"=<its URL>")
}

// SearchClient returns a go-elasticsearch/v8 client for the test search server.
//
// Test glue, not product code: go-elasticsearch/v8 refuses servers whose responses lack
// the header `X-Elastic-Product: Elasticsearch`, which OpenSearch does not send. When the
// test server is OpenSearch, the client's transport adds that header to responses. A
// production deployment talks to Elasticsearch and needs nothing of the kind.
func SearchClient(t testing.TB) *elasticsearch.Client {
	t.Helper()
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: []string{SearchURL(t)},
		Transport: productHeader{next: http.DefaultTransport},
	})
	if err != nil {
		t.Fatalf("search client: %v", err)
	}
	return es
}

// productHeader is the test-only transport described at SearchClient.
type productHeader struct{ next http.RoundTripper }

func (p productHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(r)
	if err == nil && resp.Header.Get("X-Elastic-Product") == "" {
		resp.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return resp, err
}

// NewIndexName returns an index name unique to the calling test; the index (if the
// test created it) is deleted when the test ends.
func NewIndexName(t testing.TB) string {
	t.Helper()
	name := strings.ReplaceAll(UniqueName(t, "t", 200), "_", "-")
	DeleteIndexAfter(t, name)
	return name
}

// DeleteIndexAfter deletes the index, if it exists, when the test ends.
func DeleteIndexAfter(t testing.TB, name string) {
	t.Helper()
	es := SearchClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := es.Indices.Delete([]string{name}, es.Indices.Delete.WithContext(ctx),
			es.Indices.Delete.WithIgnoreUnavailable(true))
		if err != nil {
			t.Logf("delete index %s: %v", name, err)
			return
		}
		resp.Body.Close()
	})
}
