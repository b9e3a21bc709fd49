package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8"
)

// IndexVersion is the version of the index layout below; a new mapping gets a new
// versioned index behind the same alias.
const IndexVersion = 1

// mapping is the explicit mapping of item documents: text analysed, ids as keywords,
// dates as dates.
const mapping = `{
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "id":            {"type": "keyword"},
      "collection_id": {"type": "keyword"},
      "title":         {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
      "content":       {"type": "text"},
      "source_url":    {"type": "keyword", "ignore_above": 2048},
      "created_at":    {"type": "date"},
      "updated_at":    {"type": "date"},
      "version":       {"type": "long"}
    }
  }
}`

// VersionedIndex is the concrete index behind an alias: "atlas-items" -> "atlas-items-v1".
func VersionedIndex(alias string) string { return fmt.Sprintf("%s-v%d", alias, IndexVersion) }

// EnsureIndex creates the versioned index with its mapping and points the alias at it,
// unless the alias already exists. Concurrent callers are safe: losing the race to
// create the index is fine.
func EnsureIndex(ctx context.Context, es *elasticsearch.Client, alias string) error {
	resp, err := es.Indices.ExistsAlias([]string{alias}, es.Indices.ExistsAlias.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("check alias %s: %w", alias, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
	default:
		return fmt.Errorf("check alias %s: %s", alias, resp.Status())
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(mapping), &body); err != nil {
		return err
	}
	body["aliases"] = map[string]any{alias: map[string]any{"is_write_index": true}}
	raw, _ := json.Marshal(body)
	index := VersionedIndex(alias)
	resp, err = es.Indices.Create(index, es.Indices.Create.WithBody(bytes.NewReader(raw)), es.Indices.Create.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("create index %s: %w", index, err)
	}
	defer resp.Body.Close()
	if resp.IsError() {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if bytes.Contains(msg, []byte("resource_already_exists_exception")) {
			return nil
		}
		return fmt.Errorf("create index %s: %s: %s", index, resp.Status(), msg)
	}
	return nil
}
