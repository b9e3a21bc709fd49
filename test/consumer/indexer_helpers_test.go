package consumer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// indexSetup is an indexer test's topic, database (migrated), search server and index alias.
type indexSetup struct {
	*setup
	engine    infra.SearchEngine
	alias     string
	searchURL string
}

// newIndexSetup is newIndexSetupOn the default search server.
func newIndexSetup(t testing.TB, partitions int32) *indexSetup {
	t.Helper()
	return newIndexSetupOn(t, infra.DefaultSearch, partitions)
}

// newIndexSetupOn sets up an indexer test whose index lives on the engine's server.
func newIndexSetupOn(t testing.TB, engine infra.SearchEngine, partitions int32) *indexSetup {
	t.Helper()
	s := &indexSetup{setup: newSetup(t, partitions), engine: engine, searchURL: engine.URL(t)}
	s.alias = engine.NewIndexName(t)
	// the versioned index behind the alias goes too
	engine.DeleteIndexAfter(t, s.alias+"-v1")
	m, err := migrations.Open(s.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// forEachEngine runs test as a parallel subtest (named after the engine) against each
// search server line of infra.SearchEngines, with the same assertions: the indexer's
// client, mapping and external versioning are shown on every line.
func forEachEngine(t *testing.T, test func(t *testing.T, engine infra.SearchEngine)) {
	t.Parallel()
	for _, engine := range infra.SearchEngines() {
		t.Run(engine.Name, func(t *testing.T) {
			t.Parallel()
			test(t, engine)
		})
	}
}

func (s *indexSetup) startIndexer(t testing.TB, name, group string, extra ...string) *consumerProc {
	t.Helper()
	return s.startIndexerAt(t, name, group, s.searchURL, s.alias, extra...)
}

// search returns a client for the setup's search server.
func (s *indexSetup) search(t testing.TB) *elasticsearch.Client {
	t.Helper()
	return s.engine.Client(t)
}

// indexed returns the documents of the index (or alias) on the setup's search server.
func (s *indexSetup) indexed(t testing.TB, index string) map[string]infra.IndexedItem {
	t.Helper()
	return s.engine.IndexedItems(t, index)
}

// indexDiff describes how the index (or alias) differs from the live items ("" if not).
func (s *indexSetup) indexDiff(t testing.TB, index string) string {
	t.Helper()
	return s.engine.IndexDiff(t, s.pool, index)
}

// applyToItems changes the items table the way the Atlas API does before it publishes
// each event. hardDelete decides, per deleted item, between a hard and a soft delete.
func (s *indexSetup) applyToItems(t testing.TB, envs []*event.Envelope, hardDelete func(id uuid.UUID) bool) {
	t.Helper()
	if err := itemwriter.Apply(context.Background(), s.pool, envs, hardDelete); err != nil {
		t.Fatal(err)
	}
}

// appliedEvents counts the events recorded as applied, for every target.
func (s *indexSetup) appliedEvents(t testing.TB) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM indexer_applied_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// itemEvents keeps the item events of envs.
func itemEvents(envs []*event.Envelope) []*event.Envelope {
	var out []*event.Envelope
	for _, e := range envs {
		if e.Entity.Type == event.EntityItem {
			out = append(out, e)
		}
	}
	return out
}

// generateItems returns n item events from the generator (other events are dropped).
func generateItems(t testing.TB, seed uint64, n int) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for chunk := uint64(0); len(out) < n; chunk++ {
		out = append(out, itemEvents(generate(t, seed*1000+chunk, 4*n))...)
	}
	return out[:n]
}

// createdItems returns n ItemCreated events of distinct items.
func createdItems(t testing.TB, seed uint64, n int) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for _, e := range generateItems(t, seed, 5*n) {
		if e.EventType == event.ItemCreated && len(out) < n {
			out = append(out, e)
		}
	}
	if len(out) != n {
		t.Fatalf("generated only %d of %d ItemCreated events", len(out), n)
	}
	return out
}

// waitIndexEqualsTable waits until the setup's index holds exactly the live items.
func (s *indexSetup) waitIndexEqualsTable(t testing.TB, timeout time.Duration, procs ...*consumerProc) {
	t.Helper()
	s.waitIndexEquals(t, s.alias, timeout, procs...)
}

// waitIndexEquals waits until the index (or alias) holds exactly the live items.
func (s *indexSetup) waitIndexEquals(t testing.TB, index string, timeout time.Duration, procs ...*consumerProc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	diff := ""
	for time.Now().Before(deadline) {
		if diff = s.indexDiff(t, index); diff == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s never matched the items table within %s: %s\n%s", index, timeout, diff, tails(procs))
}

// startIndexerAt starts an indexer writing to alias on the search server at url (a
// proxy in front of the setup's server, or another alias than the setup's).
func (s *indexSetup) startIndexerAt(t testing.TB, name, group, url, alias string, extra ...string) *consumerProc {
	t.Helper()
	args := append([]string{"--elasticsearch-addresses", url, "--elasticsearch-index", alias}, s.engine.IndexerFlags()...)
	return s.startMode(t, "indexer", name, group, append(args, extra...)...)
}

// itemEvent returns a new event of type typ about the item of of, with data.
func itemEvent(t testing.TB, typ event.Type, of *event.Envelope, data any) *event.Envelope {
	t.Helper()
	e, err := event.New(typ, of.Entity, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// documentVersion returns the version of the item's document in the index, or 0 when
// the index has none.
func (s *indexSetup) documentVersion(t testing.TB, index string, item uuid.UUID) int64 {
	t.Helper()
	d, ok := s.indexed(t, index)[item.String()]
	if !ok {
		return 0
	}
	return d.Version
}

// proxy forwards TCP connections to target until it is switched off, which makes the
// server behind it unreachable without stopping it (other tests share it), or paused,
// which holds every byte in both directions, as a network that drops packets does, until
// it is resumed.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	off    bool
	conns  []net.Conn
	// resume is open while the proxy is paused, nil otherwise.
	resume chan struct{}
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setPaused(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.off {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = p.copyConn(up, c) }()
	_, _ = p.copyConn(c, up)
}

func (p *proxy) copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			p.mu.Lock()
			resume := p.resume
			p.mu.Unlock()
			if resume != nil {
				<-resume
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// setOff cuts every connection and refuses new ones (true), or lets them through again.
func (p *proxy) setOff(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
	if off {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// setPaused holds all traffic (true) or lets it, and what it held, through again.
func (p *proxy) setPaused(paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case paused && p.resume == nil:
		p.resume = make(chan struct{})
	case !paused && p.resume != nil:
		close(p.resume)
		p.resume = nil
	}
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

// throttlingProxy forwards HTTP requests to the search server; while throttling, it
// answers every bulk request itself with a 200 whose every item is a 429
// es_rejected_execution_exception, as a search server with a full write queue does.
type throttlingProxy struct {
	srv       *httptest.Server
	on        atomic.Bool
	throttled atomic.Int64
}

func startThrottlingProxy(t testing.TB, target string) *throttlingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &throttlingProxy{}
	forward := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.on.Load() || !strings.HasSuffix(r.URL.Path, "/_bulk") {
			forward.ServeHTTP(w, r)
			return
		}
		p.throttled.Add(1)
		var items []any
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var action map[string]map[string]any
			if json.Unmarshal(sc.Bytes(), &action) != nil {
				continue
			}
			for kind, meta := range action {
				items = append(items, map[string]any{kind: map[string]any{
					"_index": meta["_index"], "_id": meta["_id"], "status": 429,
					"error": map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution (queue capacity 10000) on write"},
				}})
				if kind == "index" || kind == "create" || kind == "update" {
					sc.Scan() // the document line
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": true, "items": items})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *throttlingProxy) throttle(on bool) { p.on.Store(on) }
func (p *throttlingProxy) url() string      { return p.srv.URL }
