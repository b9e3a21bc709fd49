package infra

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/atlas-platform/atlas-operator/consumer/indexer"
)

// SearchURL returns the URL of the test search server.
func SearchURL(t testing.TB) string {
	t.Helper()
	return Require(t, EnvElasticsearchURL, "Elasticsearch-compatible search server",
		"start a real OpenSearch node with `hack/opensearch.sh start DIR` (jars from Maven Central, needs Java 17 and mvn) and export "+EnvElasticsearchURL+"=<its URL>")
}

// SearchClient returns a go-elasticsearch/v8 client for the test search server, built
// like the indexer's (with the OpenSearch compatibility the indexer's
// --elasticsearch-opensearch flag turns on, since the test server is OpenSearch).
func SearchClient(t testing.TB) *elasticsearch.Client {
	t.Helper()
	es, err := indexer.NewClient(indexer.ClientConfig{Addresses: []string{SearchURL(t)}, OpenSearch: true})
	if err != nil {
		t.Fatal(err)
	}
	return es
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
