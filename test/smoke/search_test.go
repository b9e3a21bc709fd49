package smoke

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestSearchIsReal: each search server line (Elasticsearch 8.19, OpenSearch 2.19 and 3.x,
// see infra.SearchEngines) reports its real name and version, of its line, and a document
// indexed through go-elasticsearch/v8 comes back by id and by a full-text query.
// Elasticsearch answers with its X-Elastic-Product header itself (the client is not told
// it talks to OpenSearch, so it would refuse the answers otherwise).
func TestSearchIsReal(t *testing.T) {
	t.Parallel()
	for _, engine := range infra.SearchEngines() {
		t.Run(engine.Name, func(t *testing.T) {
			t.Parallel()
			searchIsReal(t, engine)
		})
	}
}

func searchIsReal(t *testing.T, engine infra.SearchEngine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	es := engine.Client(t)

	info, err := es.Info(es.Info.WithContext(ctx))
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	defer info.Body.Close()
	var about infra.About
	if err := json.NewDecoder(info.Body).Decode(&about); err != nil {
		t.Fatalf("decode info: %v", err)
	}
	t.Logf("search (%s, %s): node %q is %s", engine.Name, engine.Env, about.Name, about)
	if about.Version.Number == "" || about.Version.Lucene == "" {
		t.Fatalf("server did not report a version: %+v", about)
	}
	if !strings.HasPrefix(about.Version.Number, engine.Line) {
		t.Fatalf("%s reports version %s, want %sx", engine.Name, about.Version.Number, engine.Line)
	}
	want := "elasticsearch"
	if engine.OpenSearch {
		want = "opensearch"
	}
	if about.Distribution() != want {
		t.Fatalf("%s reports distribution %q, want %s", engine.Name, about.Distribution(), want)
	}
	// (for OpenSearch, which sends none, the test glue adds the header)
	if !engine.OpenSearch && info.Header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Fatalf("%s answered GET / with X-Elastic-Product %q", engine.Name, info.Header.Get("X-Elastic-Product"))
	}

	index := engine.NewIndexName(t)
	doc := `{"title":"Quarterly finance report","content":"revenue grew in every region"}`
	res, err := es.Index(index, strings.NewReader(doc), es.Index.WithDocumentID("item-1"),
		es.Index.WithRefresh("true"), es.Index.WithContext(ctx))
	if err != nil {
		t.Fatalf("index: %v", err)
	}
	res.Body.Close()
	if res.IsError() {
		t.Fatalf("index: %s", res.Status())
	}

	got, err := es.Get(index, "item-1", es.Get.WithContext(ctx))
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer got.Body.Close()
	var fetched struct {
		Found  bool            `json:"found"`
		Source json.RawMessage `json:"_source"`
	}
	if err := json.NewDecoder(got.Body).Decode(&fetched); err != nil {
		t.Fatal(err)
	}
	if !fetched.Found || !strings.Contains(string(fetched.Source), "Quarterly finance report") {
		t.Fatalf("get returned %+v", fetched)
	}

	search, err := es.Search(es.Search.WithIndex(index), es.Search.WithContext(ctx),
		es.Search.WithBody(strings.NewReader(`{"query":{"match":{"content":"revenue"}}}`)))
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	defer search.Body.Close()
	var hits struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(search.Body).Decode(&hits); err != nil {
		t.Fatal(err)
	}
	if len(hits.Hits.Hits) != 1 || hits.Hits.Hits[0].ID != "item-1" {
		t.Fatalf("search for 'revenue' returned %+v", hits)
	}
}
