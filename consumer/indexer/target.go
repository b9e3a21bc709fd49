package indexer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/atlas-platform/atlas-operator/consumer/runner"
)

// target is where a batch is written, and whose record of applied events it reads and
// extends: the concrete index behind the alias (its write index), identified by its uuid
// (a re-created index of the same name is a new target), for one consumer group. Two
// consumers with different targets never take each other's work as done.
type target struct {
	index string
	uuid  string
	// id is the indexer_targets row of (uuid, consumer group).
	id int32
}

// targetRefresh is how long a resolved target is used before the alias is resolved
// again, so a switched alias is followed within this time.
const targetRefresh = 10 * time.Second

// targets resolves and caches the target of the configured alias and group.
type targets struct {
	es           *elasticsearch.Client
	store        store
	alias, group string
	log          *slog.Logger
	// staleWrite is MaxReadAge + BulkTimeout: the longest a state read can be old when it
	// reaches the search server, which must stay below the index's index.gc_deletes.
	staleWrite time.Duration
	// timeout bounds each resolving request (a hanging network must not hold a batch).
	timeout time.Duration

	mu         sync.Mutex
	cur        target
	resolvedAt time.Time
	warned     string
}

// get returns the current target, resolving it when the cached one is older than
// targetRefresh. Prepare and Apply call it concurrently. Errors are
// *runner.DependencyError naming the search server or Postgres.
func (t *targets) get(ctx context.Context) (target, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur.id != 0 && time.Since(t.resolvedAt) < targetRefresh {
		return t.cur, nil
	}
	index, uuid, gcDeletes, err := t.resolve(ctx)
	if err != nil {
		return target{}, &runner.DependencyError{Dependency: DependencySearch, Err: err}
	}
	if index != t.cur.index || uuid != t.cur.uuid {
		id, err := t.store.target(ctx, uuid, index, t.group)
		if err != nil {
			return target{}, &runner.DependencyError{Dependency: DependencyPostgres, Err: err}
		}
		if t.cur.id != 0 {
			t.log.Info("the index alias now points at another index; its own record of applied events is used from now on",
				"alias", t.alias, "index", index, "index_uuid", uuid, "previous_index", t.cur.index)
		}
		t.cur = target{index: index, uuid: uuid, id: id}
	}
	if gcDeletes > 0 && gcDeletes <= t.staleWrite && t.warned != index {
		t.warned = index
		t.log.Warn("the index forgets deletes sooner than a read state may take to be written: lower --max-read-age or --bulk-timeout, or raise index.gc_deletes",
			"index", index, "gc_deletes", gcDeletes.String(), "max_read_age_plus_bulk_timeout", t.staleWrite.String())
	}
	t.resolvedAt = time.Now()
	return t.cur, nil
}

// resolve asks the search server which index the alias writes to, its uuid and its
// index.gc_deletes.
func (t *targets) resolve(ctx context.Context) (index, uuid string, gcDeletes time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	resp, err := t.es.Indices.GetAlias(t.es.Indices.GetAlias.WithIndex(t.alias), t.es.Indices.GetAlias.WithContext(ctx))
	if err != nil {
		return "", "", 0, fmt.Errorf("resolve index alias %s: %w", t.alias, err)
	}
	body, err := readAll(resp.Body)
	if err != nil {
		return "", "", 0, fmt.Errorf("resolve index alias %s: %w", t.alias, err)
	}
	if resp.IsError() {
		return "", "", 0, fmt.Errorf("resolve index alias %s: %s: %s", t.alias, resp.Status(), body)
	}
	if index, err = writeIndex(body, t.alias); err != nil {
		return "", "", 0, err
	}
	resp, err = t.es.Indices.GetSettings(t.es.Indices.GetSettings.WithIndex(index),
		t.es.Indices.GetSettings.WithName("index.uuid", "index.gc_deletes"),
		t.es.Indices.GetSettings.WithIncludeDefaults(true), t.es.Indices.GetSettings.WithFlatSettings(true),
		t.es.Indices.GetSettings.WithContext(ctx))
	if err != nil {
		return "", "", 0, fmt.Errorf("read settings of index %s: %w", index, err)
	}
	if body, err = readAll(resp.Body); err != nil {
		return "", "", 0, fmt.Errorf("read settings of index %s: %w", index, err)
	}
	if resp.IsError() {
		return "", "", 0, fmt.Errorf("read settings of index %s: %s: %s", index, resp.Status(), body)
	}
	uuid, gcDeletes, err = indexIdentity(body, index)
	return index, uuid, gcDeletes, err
}

func readAll(r io.ReadCloser) ([]byte, error) {
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

// writeIndex picks, from a GET <name>/_alias answer, the index that writes to name go
// to: the only index (name may be an index itself) or the alias's write index.
func writeIndex(body []byte, name string) (string, error) {
	var indices map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex *bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	if err := json.Unmarshal(body, &indices); err != nil {
		return "", fmt.Errorf("resolve index alias %s: %w", name, err)
	}
	if len(indices) == 1 {
		for index := range indices {
			return index, nil
		}
	}
	names := make([]string, 0, len(indices))
	for index, a := range indices {
		names = append(names, index)
		if w := a.Aliases[name].IsWriteIndex; w != nil && *w {
			return index, nil
		}
	}
	sort.Strings(names)
	return "", fmt.Errorf("index alias %s points at %d indexes (%s) and none is its write index: mark one with is_write_index",
		name, len(names), strings.Join(names, ", "))
}

// indexIdentity reads index.uuid and index.gc_deletes (set or default; 0 when unknown)
// from a flat GET <index>/_settings answer.
func indexIdentity(body []byte, index string) (string, time.Duration, error) {
	var all map[string]struct {
		Settings map[string]any `json:"settings"`
		Defaults map[string]any `json:"defaults"`
	}
	if err := json.Unmarshal(body, &all); err != nil {
		return "", 0, fmt.Errorf("read settings of index %s: %w", index, err)
	}
	s, ok := all[index]
	if !ok {
		return "", 0, fmt.Errorf("read settings of index %s: the answer does not name it", index)
	}
	uuid, _ := s.Settings["index.uuid"].(string)
	if uuid == "" {
		return "", 0, fmt.Errorf("read settings of index %s: no index.uuid", index)
	}
	gc, _ := s.Settings["index.gc_deletes"].(string)
	if gc == "" {
		gc, _ = s.Defaults["index.gc_deletes"].(string)
	}
	return uuid, parseTimeValue(gc), nil
}

// parseTimeValue parses an Elasticsearch time value ("60s", "1m", "2d"); 0 when it cannot.
func parseTimeValue(s string) time.Duration {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			return time.Duration(n) * 24 * time.Hour
		}
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d
}
