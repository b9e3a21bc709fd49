package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/atlas-platform/atlas-operator/consumer/indexer"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/tlsconfig"
)

// SearchEngine is one line of search server the tests run against, found at the URL its
// environment variable holds.
type SearchEngine struct {
	// Name names the engine's subtests (TestX/OpenSearch3).
	Name string
	// Env is the environment variable with the server's URL.
	Env string
	// Line is the version prefix the server must report ("3.").
	Line string
	// OpenSearch: the server is OpenSearch, so clients need the compatibility the
	// indexer's --elasticsearch-opensearch flag turns on (see indexer.ClientConfig).
	OpenSearch bool
	// TLS, when set, are the PEM files of a server serving HTTPS that demands a client
	// certificate (StartTLSOpenSearch): its CA and the indexer's certificate and key.
	TLS *tlsconfig.Files
	// url, when set, is the server's URL instead of Env's (a test's private server).
	url       string
	what, how string
}

var (
	// Elasticsearch8 is a real Elasticsearch 8.19 node (hack/elasticsearch.sh), the default
	// test search server: clients talk to it as to any Elasticsearch, with nothing added.
	Elasticsearch8 = SearchEngine{
		Name: "Elasticsearch8", Env: EnvElasticsearchURL, Line: "8.",
		what: "Elasticsearch 8 server",
		how:  "start a real Elasticsearch 8.19 node with `hack/elasticsearch.sh start DIR` (jars from Maven Central, needs a Java 17+ JDK and mvn) and export " + EnvElasticsearchURL + "=<its URL>",
	}
	// OpenSearch2 is the OpenSearch 2.19 line.
	OpenSearch2 = SearchEngine{
		Name: "OpenSearch2", Env: EnvOpenSearchURL, Line: "2.", OpenSearch: true,
		what: "OpenSearch 2.x server",
		how:  "start a real OpenSearch 2.19 node with `hack/opensearch.sh start DIR` (jars from Maven Central, needs Java 17 and mvn) and export " + EnvOpenSearchURL + "=<its URL>",
	}
	// OpenSearch3 is the OpenSearch 3.x line.
	OpenSearch3 = SearchEngine{
		Name: "OpenSearch3", Env: EnvOpenSearch3URL, Line: "3.", OpenSearch: true,
		what: "OpenSearch 3.x server",
		how:  "start a real OpenSearch 3.x node with `ATLAS_OPENSEARCH_VERSION=3 hack/opensearch.sh start DIR` (jars from Maven Central, needs Java 21+, e.g. the Temurin 25 JDK under /usr/lib/jvm, and mvn) and export " + EnvOpenSearch3URL + "=<its URL>",
	}
	// DefaultSearch is the search server every search test uses unless it runs against
	// each line (SearchEngines).
	DefaultSearch = Elasticsearch8
)

// SearchEngines returns every search server line the indexer is shown to work with, the
// default first. A test runs its assertions against each as a subtest (forEachEngine in
// test/consumer); an engine whose variable is missing fails its subtest.
func SearchEngines() []SearchEngine { return []SearchEngine{Elasticsearch8, OpenSearch2, OpenSearch3} }

// About is what a search server reports about itself (GET /).
type About struct {
	Name    string `json:"name"`
	Version struct {
		Distribution string `json:"distribution"`
		Number       string `json:"number"`
		Lucene       string `json:"lucene_version"`
	} `json:"version"`
}

// Distribution is "opensearch" or "elasticsearch" (which reports none).
func (a About) Distribution() string {
	if a.Version.Distribution == "" {
		return "elasticsearch"
	}
	return a.Version.Distribution
}

func (a About) String() string {
	return fmt.Sprintf("%s %s (Lucene %s)", a.Distribution(), a.Version.Number, a.Version.Lucene)
}

// checked holds, by URL, what each server reported the first time, or why it is unfit.
var checked sync.Map // url -> checkResult

type checkResult struct {
	about About
	err   error
}

// URL returns the engine's URL, failing the test when its variable is missing or the
// server is not of the engine's line (checked once per URL).
func (e SearchEngine) URL(t testing.TB) string {
	t.Helper()
	url := e.url
	if url == "" {
		url = Require(t, e.Env, e.what, e.how)
	}
	if _, err := e.about(url); err != nil {
		t.Fatalf("%s=%s: %v", e.Env, url, err)
	}
	return url
}

// About returns what the engine's server reports about itself.
func (e SearchEngine) About(t testing.TB) About {
	t.Helper()
	url := e.URL(t)
	a, err := e.about(url)
	if err != nil {
		t.Fatalf("%s=%s: %v", e.Env, url, err)
	}
	return a
}

func (e SearchEngine) about(url string) (About, error) {
	if r, ok := checked.Load(url); ok {
		return r.(checkResult).about, r.(checkResult).err
	}
	var r checkResult
	r.about, r.err = e.fetchAbout(url)
	if r.err == nil && !strings.HasPrefix(r.about.Version.Number, e.Line) {
		r.err = fmt.Errorf("the server is %s, not of the %s line %s", r.about, e.Name, e.Line+"x")
	}
	if r.err == nil && (r.about.Distribution() == "opensearch") != e.OpenSearch {
		r.err = fmt.Errorf("the server is %s, not %s", r.about, e.what)
	}
	checked.Store(url, r)
	return r.about, r.err
}

func (e SearchEngine) fetchAbout(url string) (About, error) {
	es, err := e.newClient(url)
	if err != nil {
		return About{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := es.Info(es.Info.WithContext(ctx))
	if err != nil {
		return About{}, fmt.Errorf("GET /: %w", err)
	}
	defer resp.Body.Close()
	if resp.IsError() {
		return About{}, fmt.Errorf("GET /: %s", resp.Status())
	}
	var a About
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return About{}, fmt.Errorf("GET /: %w", err)
	}
	if a.Version.Number == "" || a.Version.Lucene == "" {
		return a, fmt.Errorf("GET / reported no version: %+v", a)
	}
	return a, nil
}

// Client returns a go-elasticsearch/v8 client for the engine's server, built like the
// indexer's (with the OpenSearch compatibility its --elasticsearch-opensearch flag
// turns on, for an OpenSearch server).
func (e SearchEngine) Client(t testing.TB) *elasticsearch.Client {
	t.Helper()
	es, err := e.newClient(e.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func (e SearchEngine) newClient(url string) (*elasticsearch.Client, error) {
	c := indexer.ClientConfig{Addresses: []string{url}, OpenSearch: e.OpenSearch}
	if e.TLS != nil {
		p, err := e.TLS.Read("search server")
		if err != nil {
			return nil, err
		}
		if c.TLS, err = tlsconfig.Client(p, false, "search server"); err != nil {
			return nil, err
		}
	}
	return indexer.NewClient(c)
}

// IndexerFlags returns the indexer's flags for this engine (beyond its address).
func (e SearchEngine) IndexerFlags() []string {
	var flags []string
	if e.OpenSearch {
		flags = append(flags, "--"+names.FlagElasticsearchOpenSearch)
	}
	if e.TLS != nil {
		flags = append(flags, "--"+names.FlagElasticsearchTLSCAFile, e.TLS.CA,
			"--"+names.FlagElasticsearchTLSCertFile, e.TLS.Cert, "--"+names.FlagElasticsearchTLSKeyFile, e.TLS.Key)
	}
	return flags
}

// NewIndexName returns an index name unique to the calling test; the index (if the
// test created it) is deleted from the engine's server when the test ends.
func (e SearchEngine) NewIndexName(t testing.TB) string {
	t.Helper()
	name := strings.ReplaceAll(UniqueName(t, "t", 200), "_", "-")
	e.DeleteIndexAfter(t, name)
	return name
}

// DeleteIndexAfter deletes the index, if it exists, when the test ends.
func (e SearchEngine) DeleteIndexAfter(t testing.TB, name string) {
	t.Helper()
	es := e.Client(t)
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

// SearchURL returns the URL of the default test search server (Elasticsearch 8).
func SearchURL(t testing.TB) string { t.Helper(); return DefaultSearch.URL(t) }

// SearchClient returns a go-elasticsearch/v8 client for the default test search server.
func SearchClient(t testing.TB) *elasticsearch.Client { t.Helper(); return DefaultSearch.Client(t) }

// NewIndexName returns an index name unique to the calling test on the default search
// server; the index (if the test created it) is deleted when the test ends.
func NewIndexName(t testing.TB) string { t.Helper(); return DefaultSearch.NewIndexName(t) }

// DeleteIndexAfter deletes the index of the default search server, if it exists, when
// the test ends.
func DeleteIndexAfter(t testing.TB, name string) { t.Helper(); DefaultSearch.DeleteIndexAfter(t, name) }

// Flush commits the index's segments to disk (the search server's flush), so the writes
// before it are not written out during what follows.
func (e SearchEngine) Flush(t testing.TB, index string) {
	t.Helper()
	es := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := es.Indices.Flush(es.Indices.Flush.WithContext(ctx), es.Indices.Flush.WithIndex(index))
	if err != nil {
		t.Fatalf("flush index %s: %v", index, err)
	}
	defer resp.Body.Close()
	if resp.IsError() {
		t.Fatalf("flush index %s: %s", index, resp.Status())
	}
}
