package consumer_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/indexer"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Indexer test 1: 5,000 created items become 5,000 documents equal to the rows.
func TestIndexerIndexesCreatedItems(t *testing.T) {
	forEachEngine(t, indexesCreatedItems)
}

func indexesCreatedItems(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	created := createdItems(t, 21, 5_000)
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	c := s.startIndexer(t, "indexer", infra.NewGroup(t))
	s.waitIndexEqualsTable(t, 2*time.Minute, c)
	if n := len(s.indexed(t, s.alias)); n != 5_000 {
		t.Fatalf("%d documents, want 5000", n)
	}
	c.stop()
}

// Indexer test 2: updates, several per item in one batch, delivered out of order: the
// index ends equal to the final table, with one item query per batch.
func TestIndexerUpdatesOutOfOrder(t *testing.T) {
	forEachEngine(t, updatesOutOfOrder)
}

func updatesOutOfOrder(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	envs := generateItems(t, 22, 8_000)
	s.applyToItems(t, envs, func(uuid.UUID) bool { return false })
	shuffled := append([]*event.Envelope(nil), envs...)
	rand.New(rand.NewPCG(22, 22)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	s.produce(t, shuffled)

	c := s.startIndexer(t, "indexer", infra.NewGroup(t), "--batch-size", "2000")
	c.waitMetric("atlas_consumer_records_consumed_total", float64(len(envs)), 2*time.Minute)
	s.waitIndexEqualsTable(t, time.Minute, c)
	queries, _ := c.metric("atlas_consumer_item_queries_total")
	batches, _ := c.metric("atlas_consumer_batch_size_count")
	written, _ := c.metric("atlas_consumer_documents_indexed_total")
	deleted, _ := c.metric("atlas_consumer_documents_deleted_total")
	t.Logf("%d events in %v batches: %v item queries, %v documents written, %v deleted", len(envs), batches, queries, written, deleted)
	if queries == 0 || queries > batches {
		t.Fatalf("%v item queries for %v batches: want one query per batch", queries, batches)
	}
	if written+deleted >= float64(len(envs)) {
		t.Fatalf("%v index operations for %d events: events for one item in one batch were not collapsed", written+deleted, len(envs))
	}
	c.stop()
}

// Indexer test 3: hard and soft deletes remove the documents; replaying the old
// ItemCreated events, or re-publishing them under new event ids, resurrects nothing.
func TestIndexerDeletesStayDeleted(t *testing.T) {
	forEachEngine(t, deletesStayDeleted)
}

func deletesStayDeleted(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	created := createdItems(t, 23, 1_000)
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	s.waitIndexEqualsTable(t, time.Minute, c)

	var deletes []*event.Envelope
	hard := map[uuid.UUID]bool{}
	for i, e := range created[:500] {
		d, err := event.New(event.ItemDeleted, e.Entity, map[string]any{"version": 2})
		if err != nil {
			t.Fatal(err)
		}
		hard[e.Entity.ID] = i%2 == 0
		deletes = append(deletes, d)
	}
	s.applyToItems(t, deletes, func(id uuid.UUID) bool { return hard[id] })
	s.produce(t, deletes)
	s.waitIndexEqualsTable(t, time.Minute, c)
	if n := len(s.indexed(t, s.alias)); n != 500 {
		t.Fatalf("%d documents after deleting 500 of 1000 items", n)
	}

	// A replay of the old creations (duplicates) and a re-publication under new ids.
	var again []*event.Envelope
	for _, e := range created[:500] {
		r, err := event.New(event.ItemCreated, e.Entity, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, r)
	}
	s.produce(t, created)
	s.produce(t, again)
	total := len(created) + len(deletes) + len(created) + len(again)
	c.waitMetric("atlas_consumer_records_consumed_total", float64(total), time.Minute)
	c.stop()
	if diff := s.indexDiff(t, s.alias); diff != "" {
		t.Fatalf("after the replay: %s", diff)
	}
	// A new group replays the whole topic: still nothing comes back.
	r := s.startIndexer(t, "replay", infra.NewGroup(t))
	r.waitMetric("atlas_consumer_records_consumed_total", float64(total), time.Minute)
	r.stop()
	if diff := s.indexDiff(t, s.alias); diff != "" {
		t.Fatalf("after a replay with a new group: %s", diff)
	}
}

// Indexer test 4: every event delivered twice is applied once.
func TestIndexerAppliesDuplicatesOnce(t *testing.T) {
	forEachEngine(t, appliesDuplicatesOnce)
}

func appliesDuplicatesOnce(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	envs := generateItems(t, 24, 2_000)
	s.applyToItems(t, envs, nil)
	s.produce(t, envs)
	s.produce(t, envs)
	c := s.startIndexer(t, "indexer", infra.NewGroup(t))
	c.waitMetric("atlas_consumer_records_consumed_total", float64(2*len(envs)), 2*time.Minute)
	c.waitMetric("atlas_consumer_events_duplicate_total", float64(len(envs)), time.Minute)
	s.waitIndexEqualsTable(t, time.Minute, c)
	if applied := s.appliedEvents(t); applied != len(envs) {
		t.Fatalf("indexer_applied_events holds %d ids, want %d", applied, len(envs))
	}
	if dup, _ := c.metric("atlas_consumer_events_duplicate_total"); dup != float64(len(envs)) {
		t.Fatalf("duplicates metric %v, want %d", dup, len(envs))
	}
	c.stop()
}

// Indexer test 5: two indexers (separate groups, as during a rebalance both may handle
// an item) race on the same items while they keep changing: the newest version wins,
// round after round.
func TestIndexerRaceNewestWins(t *testing.T) {
	forEachEngine(t, raceNewestWins)
}

func raceNewestWins(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	created := createdItems(t, 25, 300)
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	a := s.startIndexer(t, "indexer-a", infra.NewGroup(t), "--batch-size", "50")
	b := s.startIndexer(t, "indexer-b", infra.NewGroup(t), "--batch-size", "70")
	published := len(created)
	version := int64(1)
	for round := 1; round <= 6; round++ {
		// Several quick updates of every item, each committed to Postgres and published
		// while both indexers are reading.
		for burst := 0; burst < 3; burst++ {
			version++
			var updates []*event.Envelope
			for _, e := range created {
				u, err := event.New(event.ItemUpdated, e.Entity, map[string]any{"version": version, "title": "round " + time.Now().Format(time.RFC3339Nano)})
				if err != nil {
					t.Fatal(err)
				}
				updates = append(updates, u)
			}
			s.applyToItems(t, updates, nil)
			s.produce(t, updates)
			published += len(updates)
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		}
		a.waitMetric("atlas_consumer_records_consumed_total", float64(published), time.Minute)
		b.waitMetric("atlas_consumer_records_consumed_total", float64(published), time.Minute)
		s.waitIndexEqualsTable(t, 30*time.Second, a, b)
	}
	conflicts, _ := a.metric("atlas_consumer_version_conflicts_total")
	more, _ := b.metric("atlas_consumer_version_conflicts_total")
	t.Logf("6 rounds equal; %v version conflicts resolved in favour of the newer state", conflicts+more)
	a.stop()
	b.stop()
}

// A newer state already in the index (as another writer with newer data leaves it) is
// never overwritten by an older one: the server answers the older write with 409, which the
// indexer counts as a version conflict and as done (no retry, no dead letter, offsets
// move on). Deterministic, unlike the race above, so external versioning is shown on each
// search server line.
func TestIndexerLeavesANewerDocumentAlone(t *testing.T) {
	forEachEngine(t, leavesANewerDocumentAlone)
}

func leavesANewerDocumentAlone(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 1)
	created := createdItems(t, 49, 100)
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	s.waitIndexEqualsTable(t, time.Minute, c)
	c.stop()

	// Version 5 of half the items is written to the index directly...
	es := s.search(t)
	newer := created[:50]
	for _, e := range newer {
		resp, err := es.Index(s.alias, strings.NewReader(`{"title":"newer","content":"v5","version":5}`),
			es.Index.WithDocumentID(e.Entity.ID.String()), es.Index.WithVersion(5), es.Index.WithVersionType("external"))
		if err != nil || resp.IsError() {
			t.Fatalf("index version 5 of %s: %v %v", e.Entity.ID, err, resp)
		}
		resp.Body.Close()
	}
	// ...then the table moves all of them to version 3, and the indexer reads that.
	var updates []*event.Envelope
	for _, e := range created {
		updates = append(updates, itemEvent(t, event.ItemUpdated, e, map[string]any{"version": 3, "title": "older"}))
	}
	s.applyToItems(t, updates, nil)
	s.produce(t, updates)
	c = s.startIndexer(t, "indexer-again", group)
	s.waitCaughtUp(t, group, time.Minute, c)
	c.waitMetric("atlas_consumer_version_conflicts_total", float64(len(newer)), 30*time.Second)
	docs := s.indexed(t, s.alias)
	for i, e := range created {
		want := infra.IndexedItem{Title: "older", Content: docs[e.Entity.ID.String()].Content, Version: 3}
		if i < len(newer) {
			want = infra.IndexedItem{Title: "newer", Content: "v5", Version: 5}
		}
		if got := docs[e.Entity.ID.String()]; got != want {
			t.Fatalf("item %d (%s) is indexed as %+v, want %+v\n%s", i, e.Entity.ID, got, want, c.tail())
		}
	}
	conflicts, _ := c.metric("atlas_consumer_version_conflicts_total")
	indexed, _ := c.metric("atlas_consumer_documents_indexed_total")
	dead, _ := c.metric("atlas_consumer_dead_lettered_total")
	if conflicts != float64(len(newer)) || indexed != float64(len(created)-len(newer)) || dead != 0 {
		t.Fatalf("%v conflicts, %v documents indexed, %v dead letters; want %d, %d, 0", conflicts, indexed, dead, len(newer), len(created)-len(newer))
	}
	c.stop()
}

// Indexer test 6: SIGKILL at random moments during a 20,000-event run: the index ends
// equal to the table.
func TestIndexerSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 6)
	envs := generateItems(t, 26, 20_000)
	s.applyToItems(t, envs, func(id uuid.UUID) bool { return id[0]%2 == 0 })
	produced := s.produceInSlices(t, envs, 500, 700*time.Millisecond)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	rng := rand.New(rand.NewPCG(26, 26))
	kills := 0
	for kills < 4 && c.killWhileWorking(rng, produced, group, s.topic) {
		kills++
		t.Logf("SIGKILL %d", kills)
	}
	if kills < 3 {
		t.Fatalf("only %d kills landed while the indexer worked", kills)
	}
	<-produced
	s.waitIndexEqualsTable(t, 3*time.Minute, c)
	c.stop()
}

// Indexer test 7: the search server is unreachable for 12 s mid-run, while a batch of
// new events and redelivered ones waits: readiness says so, nothing is lost, indexing
// resumes by itself, and the redelivered events are counted as duplicates once, however
// often their batch was tried.
func TestIndexerSurvivesSearchOutage(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 3)
	p := startProxy(t, s.searchURL[len("http://"):])
	envs := generateItems(t, 27, 8_000)
	s.applyToItems(t, envs, nil)
	group := infra.NewGroup(t)
	c := s.startIndexerAt(t, "indexer", group, p.url(), s.alias)
	s.produce(t, envs[:4_000])
	s.waitCaughtUp(t, group, time.Minute, c)
	p.setOff(true)
	outage := time.Now()
	// Redelivered events in one batch with new ones, so the batch needs the search server.
	const redelivered = 1_000
	s.produce(t, append(append([]*event.Envelope(nil), envs[:redelivered]...), envs[4_000:4_500]...))
	produced := s.produceInSlices(t, envs[4_500:], 500, 300*time.Millisecond)
	sawNotReady := c.watchNotReady(12*time.Second - time.Since(outage))
	p.setOff(false)
	if !sawNotReady {
		t.Errorf("/readyz never reported 503 while the search server was unreachable")
	}
	<-produced
	s.waitCaughtUp(t, group, 2*time.Minute, c)
	s.waitIndexEqualsTable(t, time.Minute, c)
	retries, _ := c.metricWith("atlas_consumer_retries_total", `dependency="elasticsearch"`)
	if dup, _ := c.metric("atlas_consumer_events_duplicate_total"); dup != redelivered {
		t.Fatalf("duplicates counted %v times for %d redelivered events (%v retries of the search server)", dup, redelivered, retries)
	}
	t.Logf("%v retries of the search server during the outage; %d duplicates counted once", retries, redelivered)
	c.stop()
}

// The search server defers every operation of a bulk request (per-item 429, as when its
// write queue is full) for a while: the deferred operations are retried with the
// runner's backoff, /readyz answers 503 naming the search dependency, retries show in
// atlas_consumer_retries_total{dependency="elasticsearch"}, and every document is
// counted once when the throttling ends.
func TestIndexerRetriesThrottledOperationsWithBackoff(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 3)
	tp := startThrottlingProxy(t, s.searchURL)
	envs := createdItems(t, 48, 3_000)
	s.applyToItems(t, envs, nil)
	group := infra.NewGroup(t)
	c := s.startIndexerAt(t, "indexer", group, tp.url(), s.alias)
	tp.throttle(true)
	s.produce(t, envs)
	why := c.watchNotReadyBecause(10*time.Second, "elasticsearch")
	tp.throttle(false)
	if why == "" {
		t.Errorf("/readyz never answered 503 naming elasticsearch while every bulk operation was deferred")
	} else {
		t.Logf("/readyz while throttled: %s", why)
	}
	s.waitCaughtUp(t, group, time.Minute, c)
	s.waitIndexEqualsTable(t, time.Minute, c)
	if n, _ := c.metricWith("atlas_consumer_retries_total", `dependency="elasticsearch"`); n == 0 {
		t.Errorf("atlas_consumer_retries_total{dependency=\"elasticsearch\"} = 0 after %d throttled bulk requests", tp.throttled.Load())
	}
	indexed, _ := c.metric("atlas_consumer_documents_indexed_total")
	conflicts, _ := c.metric("atlas_consumer_version_conflicts_total")
	if indexed != float64(len(envs)) || conflicts != 0 {
		t.Fatalf("%v documents indexed and %v conflicts counted for %d created items, want each counted once", indexed, conflicts, len(envs))
	}
	if c.ready() != http.StatusOK {
		t.Fatalf("/readyz still %d after the throttling ended", c.ready())
	}
	c.stop()
}

// Indexer test 8: events of other types are skipped (by header, without decoding), their
// offsets advance, and nothing is written to the index.
func TestIndexerSkipsOtherEvents(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 3)
	var others []*event.Envelope
	for _, e := range generate(t, 28, 6_000) {
		if e.Entity.Type != event.EntityItem {
			others = append(others, e)
		}
	}
	s.produce(t, others)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	c.waitMetric("atlas_consumer_records_skipped_total", float64(len(others)), time.Minute)
	for _, m := range []string{"atlas_consumer_documents_indexed_total", "atlas_consumer_documents_deleted_total", "atlas_consumer_item_queries_total"} {
		if v, err := c.metric(m); err != nil || v != 0 {
			t.Fatalf("%s = %v (%v), want 0", m, v, err)
		}
	}
	c.stop()
	if lag := infra.GroupLag(t, group, s.topic); lag != 0 {
		t.Fatalf("group lag %d after skipping %d events, want 0", lag, len(others))
	}
	if n := len(s.indexed(t, s.alias)); n != 0 {
		t.Fatalf("%d documents in the index", n)
	}
}

// A document the search server refuses for good (here: the index maps title as an
// integer) is dead-lettered with the server's reason, its events are not recorded as
// applied, and the rest of the batch is indexed.
func TestIndexerDeadLettersRejectedDocuments(t *testing.T) {
	forEachEngine(t, deadLettersRejectedDocuments)
}

func deadLettersRejectedDocuments(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 1)
	es := s.search(t)
	body := `{"mappings":{"properties":{"title":{"type":"integer"}}},"aliases":{"` + s.alias + `":{"is_write_index":true}}}`
	resp, err := es.Indices.Create(s.alias+"-v1", es.Indices.Create.WithBody(strings.NewReader(body)))
	if err != nil || resp.IsError() {
		t.Fatalf("create the index: %v %v", err, resp)
	}
	resp.Body.Close()
	collection := uuid.New()
	var envs []*event.Envelope
	for i := 0; i < 10; i++ {
		title := fmt.Sprintf("%d", 1000+i)
		if i%2 == 1 {
			title = "not a number"
		}
		e, err := event.New(event.ItemCreated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &collection},
			map[string]any{"title": title, "content": "c", "version": 1})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	s.applyToItems(t, envs, nil)
	s.produce(t, envs)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	c.waitMetric("atlas_consumer_dead_lettered_total", 5, time.Minute)
	c.waitMetric("atlas_consumer_documents_indexed_total", 5, time.Minute)
	letters := readTopic(t, s.dlq, 5, 30*time.Second)
	// The server's own reason: Elasticsearch 8 names the error document_parsing_exception,
	// OpenSearch (as Elasticsearch 7 did) mapper_parsing_exception.
	reason := "document_parsing_exception"
	if engine.OpenSearch {
		reason = "mapper_parsing_exception"
	}
	for _, dl := range letters {
		h := headers(dl)
		if h[runner.HeaderErrorKind] != indexer.KindIndexRejected || !strings.Contains(h[runner.HeaderError], reason) {
			t.Errorf("dead letter kind %q reason %q", h[runner.HeaderErrorKind], h[runner.HeaderError])
		}
	}
	t.Logf("dead letter reason: %s", headers(letters[0])[runner.HeaderError])
	if applied := s.appliedEvents(t); applied != 5 {
		t.Fatalf("%d events recorded as applied, want the 5 that were indexed", applied)
	}
	c.stop()
	if lag := infra.GroupLag(t, group, s.topic); lag != 0 {
		t.Fatalf("group lag %d, want 0", lag)
	}
}
