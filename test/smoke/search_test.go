package smoke

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestSearchIsReal: the search server reports its real name and version, and a document
// indexed through go-elasticsearch/v8 comes back by id and by a full-text query.
func TestSearchIsReal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	es := infra.SearchClient(t)

	info, err := es.Info(es.Info.WithContext(ctx))
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	defer info.Body.Close()
	var about struct {
		Name    string `json:"name"`
		Version struct {
			Distribution string `json:"distribution"`
			Number       string `json:"number"`
			Lucene       string `json:"lucene_version"`
		} `json:"version"`
	}
	if err := json.NewDecoder(info.Body).Decode(&about); err != nil {
		t.Fatalf("decode info: %v", err)
	}
	distribution := about.Version.Distribution
	if distribution == "" {
		distribution = "elasticsearch"
	}
	t.Logf("search: node %q is %s %s (Lucene %s)", about.Name, distribution, about.Version.Number, about.Version.Lucene)
	if about.Version.Number == "" || about.Version.Lucene == "" {
		t.Fatalf("server did not report a version: %+v", about)
	}

	index := infra.NewIndexName(t)
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
