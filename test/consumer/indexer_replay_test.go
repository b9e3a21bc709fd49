package consumer_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/indexer"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The README's re-index, step by step: while the indexer keeps the live index, a second
// indexer with a new group builds a fresh alias from the whole topic; once it has caught
// up, the alias searches go through is switched to the new index in one request. The new
// index equals the table (what was applied to the first index counts for nothing there),
// and both stay in step with later changes.
func TestIndexerReindexIntoANewAliasAndSwitch(t *testing.T) {
	forEachEngine(t, reindexIntoANewAliasAndSwitch)
}

func reindexIntoANewAliasAndSwitch(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	envs := generateItems(t, 41, 6_000)
	s.applyToItems(t, envs, itemwriter.HardDeleteQuarter)
	s.produce(t, envs)
	live := s.startIndexer(t, "indexer", infra.NewGroup(t))
	s.waitIndexEqualsTable(t, 2*time.Minute, live)
	// Searches go through an alias of their own (removed with the indexes).
	search := strings.ReplaceAll(infra.UniqueName(t, "search", 200), "_", "-")
	s.switchAlias(t, search, "", indexer.VersionedIndex(s.alias))

	// 1. A second indexer: a new group, a new alias, the topic from its start.
	next := s.engine.NewIndexName(t)
	s.engine.DeleteIndexAfter(t, indexer.VersionedIndex(next))
	group := infra.NewGroup(t)
	rebuild := s.startIndexerAt(t, "reindex", group, s.searchURL, next, "--start-offset", "earliest")
	// 2. It has caught up when its group has no lag.
	s.waitCaughtUp(t, group, 3*time.Minute, rebuild)
	if diff := s.indexDiff(t, next); diff != "" {
		t.Fatalf("the re-indexed alias %s after the replay: %s\n%s", next, diff, rebuild.tail())
	}
	// 3. Switch the search alias atomically.
	s.switchAlias(t, search, indexer.VersionedIndex(s.alias), indexer.VersionedIndex(next))
	if diff := s.indexDiff(t, search); diff != "" {
		t.Fatalf("searches after the switch: %s", diff)
	}
	// Later changes reach both indexes until the old indexer is removed (step 4).
	more := generateItems(t, 42, 1_000)
	s.applyToItems(t, more, itemwriter.HardDeleteQuarter)
	s.produce(t, more)
	s.waitIndexEquals(t, search, time.Minute, rebuild)
	s.waitIndexEqualsTable(t, time.Minute, live)
	live.stop()
	rebuild.stop()
}

// An index deleted and re-created under the same alias is a new target: the same group,
// its offsets reset to the start, rebuilds it whole (the record of applied events is
// keyed by the index's uuid, not its name).
func TestIndexerRebuildsARecreatedIndex(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 3)
	envs := generateItems(t, 43, 3_000)
	s.applyToItems(t, envs, itemwriter.HardDeleteQuarter)
	s.produce(t, envs)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	s.waitIndexEqualsTable(t, 2*time.Minute, c)
	c.stop()

	es := s.search(t)
	resp, err := es.Indices.Delete([]string{indexer.VersionedIndex(s.alias)})
	if err != nil || resp.IsError() {
		t.Fatalf("delete the index: %v %v", err, resp)
	}
	resp.Body.Close()
	adm := kafkaAdmin(t, s.brokers)
	ctx := context.Background()
	starts, err := adm.ListStartOffsets(ctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	reset := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) { reset.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	if res, err := adm.CommitOffsets(ctx, group, reset); err != nil || res.Error() != nil {
		t.Fatalf("reset the group's offsets: %v %v", err, res.Error())
	}

	c = s.startIndexer(t, "indexer-again", group)
	s.waitCaughtUp(t, group, 2*time.Minute, c)
	if diff := s.indexDiff(t, s.alias); diff != "" {
		t.Fatalf("the re-created index after a replay by the same group: %s\n%s", diff, c.tail())
	}
	c.stop()
}

// The scenario of an independent run: two groups write one alias; one of them is cut
// off from the search server for 80 s (its packets held, as by a network that drops
// them, so its request hangs) while an item it has already read ahead is hard-deleted
// and the other group deletes its document. The search server forgets the delete's
// tombstone after 60 s (index.gc_deletes), so the cut-off indexer's state read before
// the delete would be accepted; it must read again instead, and the item stays gone.
func TestIndexerKeepsADeletedItemOutAfterACutOff(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 1)
	p := startProxy(t, strings.TrimPrefix(s.searchURL, "http://"))
	created := createdItems(t, 44, 2)
	x, f := created[0], created[1]
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	groupA, groupB := infra.NewGroup(t), infra.NewGroup(t)
	a := s.startIndexer(t, "a", groupA)
	b := s.startIndexerAt(t, "b", groupB, p.url(), s.alias)
	s.waitCaughtUp(t, groupA, time.Minute, a)
	s.waitCaughtUp(t, groupB, time.Minute, b)
	s.waitIndexEqualsTable(t, time.Minute, a, b)
	a.stop() // it comes back for the delete only
	// Searches keep coming, as on any live index: a shard nobody searches skips its
	// scheduled refreshes, and with them the pruning of old delete tombstones.
	stopSearching := s.keepSearching(t, s.alias)
	defer stopSearching()

	cutOff := time.Now()
	p.setPaused(true)
	// B's next batch (an update of F) cannot be written; the batch after it (an update
	// of X) is read ahead meanwhile, while X still exists.
	updF := itemEvent(t, event.ItemUpdated, f, map[string]any{"version": 2, "title": "f2"})
	s.applyToItems(t, []*event.Envelope{updF}, nil)
	s.produce(t, []*event.Envelope{updF})
	b.waitMetric("atlas_consumer_records_consumed_total", 3, 30*time.Second)
	time.Sleep(time.Second)
	updX := itemEvent(t, event.ItemUpdated, x, map[string]any{"version": 2, "title": "x2"})
	s.applyToItems(t, []*event.Envelope{updX}, nil)
	s.produce(t, []*event.Envelope{updX})
	b.waitMetric("atlas_consumer_records_consumed_total", 4, 30*time.Second)
	time.Sleep(2 * time.Second) // the read-ahead of X's update (right after it is counted)

	// X is hard-deleted; group A deletes its document.
	delX := itemEvent(t, event.ItemDeleted, x, map[string]any{"version": 3})
	s.applyToItems(t, []*event.Envelope{delX}, func(uuid.UUID) bool { return true })
	s.produce(t, []*event.Envelope{delX})
	a = s.startIndexer(t, "a-again", groupA)
	s.waitCaughtUp(t, groupA, time.Minute, a)
	s.waitIndexEqualsTable(t, time.Minute, a)
	a.stop()

	time.Sleep(time.Until(cutOff.Add(80 * time.Second)))
	p.setPaused(false)
	t.Logf("B cut off for %s", time.Since(cutOff).Round(time.Second))
	s.waitCaughtUp(t, groupB, time.Minute, b)
	if v := s.documentVersion(t, s.alias, x.Entity.ID); v != 0 {
		t.Fatalf("the hard-deleted item is back in the index at version %d after the cut-off indexer caught up\n%s", v, b.tail())
	}
	if diff := s.indexDiff(t, s.alias); diff != "" {
		t.Fatalf("after the cut-off: %s", diff)
	}
	if n, _ := b.metric("atlas_consumer_dead_lettered_total"); n != 0 {
		t.Fatalf("the cut-off indexer dead-lettered %v events", n)
	}
	b.stop()
}

// A hard-deleted item's whole history, replayed 2 minutes after its deletion (the search
// server has forgotten the delete's tombstone by then): by a new group into the same
// alias, by a new group into a fresh alias, and re-published under new event ids. The
// item never comes back and nothing is dead-lettered. The trigger that records hard
// deletes is dropped first, as where the Atlas API owns the items table without it: the
// indexer's own record of the ItemDeleted events must suffice.
func TestIndexerReplayOfADeletedItemsHistory(t *testing.T) {
	t.Parallel()
	s := newIndexSetup(t, 3)
	if _, err := s.pool.Exec(context.Background(), "DROP TRIGGER items_record_hard_deletes ON items"); err != nil {
		t.Fatal(err)
	}
	created := createdItems(t, 45, 200)
	s.applyToItems(t, created, nil)
	s.produce(t, created)
	history := append([]*event.Envelope(nil), created...)
	var updates, deletes []*event.Envelope
	for _, e := range created {
		updates = append(updates, itemEvent(t, event.ItemUpdated, e, map[string]any{"version": 2, "title": "updated"}))
	}
	s.applyToItems(t, updates, nil)
	s.produce(t, updates)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	s.waitIndexEqualsTable(t, time.Minute, c)
	for _, e := range created[:100] {
		deletes = append(deletes, itemEvent(t, event.ItemDeleted, e, map[string]any{"version": 3}))
	}
	s.applyToItems(t, deletes, func(uuid.UUID) bool { return true })
	s.produce(t, deletes)
	history = append(append(history, updates...), deletes...)
	s.waitCaughtUp(t, group, time.Minute, c)
	s.waitIndexEqualsTable(t, time.Minute, c)
	deleted := time.Now()

	time.Sleep(time.Until(deleted.Add(2 * time.Minute)))
	sameGroup := infra.NewGroup(t)
	sameAlias := s.startIndexer(t, "replay-same-alias", sameGroup)
	fresh := s.engine.NewIndexName(t)
	s.engine.DeleteIndexAfter(t, indexer.VersionedIndex(fresh))
	freshGroup := infra.NewGroup(t)
	freshAlias := s.startIndexerAt(t, "replay-fresh-alias", freshGroup, s.searchURL, fresh)
	var again []*event.Envelope
	for _, e := range history {
		again = append(again, itemEvent(t, e.EventType, e, json.RawMessage(e.Data)))
	}
	s.produce(t, again)
	s.waitCaughtUp(t, group, time.Minute, c)
	s.waitCaughtUp(t, freshGroup, time.Minute, freshAlias)
	s.waitCaughtUp(t, sameGroup, time.Minute, sameAlias)
	for _, index := range []string{s.alias, fresh} {
		if diff := s.indexDiff(t, index); diff != "" {
			t.Fatalf("%s after replaying the history of %d hard-deleted items: %s", index, len(deletes), diff)
		}
	}
	for _, p := range []*consumerProc{c, sameAlias, freshAlias} {
		if n, _ := p.metric("atlas_consumer_dead_lettered_total"); n != 0 {
			t.Fatalf("%s dead-lettered %v events of the replay\n%s", p.name, n, p.tail())
		}
		p.stop()
	}
}

// A missing row is no proof of a delete: an item whose row is committed 5 s after its
// event is indexed, and an item whose row never comes is dead-lettered as item-missing
// after --item-missing-timeout, not recorded as applied, and replayable: once its row
// exists, replaying the dead letter indexes it.
func TestIndexerWaitsForARowCommittedAfterItsEvent(t *testing.T) {
	forEachEngine(t, waitsForARowCommittedAfterItsEvent)
}

func waitsForARowCommittedAfterItsEvent(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 1)
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group, "--item-missing-timeout", "12s")
	late := createdItems(t, 46, 2)
	s.produce(t, late) // the events first; rows 5 s later for one, never (yet) for the other
	time.Sleep(5 * time.Second)
	s.applyToItems(t, late[:1], nil)
	s.waitIndexEqualsTable(t, 30*time.Second, c)
	if v := s.documentVersion(t, s.alias, late[0].Entity.ID); v != 1 {
		t.Fatalf("the item whose row came 5 s late is indexed at version %d, want 1", v)
	}
	c.waitMetric("atlas_consumer_dead_lettered_total", 1, 30*time.Second)
	s.waitCaughtUp(t, group, 30*time.Second, c)
	letters := readTopic(t, s.dlq, 1, 30*time.Second)
	h := headers(letters[0])
	if h[runner.HeaderErrorKind] != indexer.KindItemMissing || !strings.Contains(h[runner.HeaderError], late[1].Entity.ID.String()) {
		t.Fatalf("dead letter kind %q reason %q, want %s naming the item", h[runner.HeaderErrorKind], h[runner.HeaderError], indexer.KindItemMissing)
	}
	t.Logf("dead letter: %s", h[runner.HeaderError])
	if n := s.appliedEvents(t); n != 1 {
		t.Fatalf("%d events recorded as applied, want only the indexed one", n)
	}
	// The row exists now: the dead letter, replayed as it is, indexes the item.
	s.applyToItems(t, late[1:], nil)
	replay := &kgo.Record{Topic: s.topic, Key: letters[0].Key, Value: letters[0].Value, Headers: letters[0].Headers}
	s.produceRecords(t, infra.KafkaClient(t), []*kgo.Record{replay})
	s.waitIndexEqualsTable(t, 30*time.Second, c)
	c.stop()
}

// The index holds Postgres state, never an event's payload, so item events of a newer
// envelope version (here 2, with a field v1 does not have) are read like version 1:
// created, updated and deleted items end up exactly as in the table. An item event of a
// newer version whose entity is not an Item is dead-lettered: the indexer cannot tell
// which row to read.
func TestIndexerReadsTheTruthForNewerEventVersions(t *testing.T) {
	forEachEngine(t, readsTheTruthForNewerEventVersions)
}

func readsTheTruthForNewerEventVersions(t *testing.T, engine infra.SearchEngine) {
	s := newIndexSetupOn(t, engine, 3)
	created := createdItems(t, 47, 300)
	var v2 []*event.Envelope
	for i, e := range created {
		v2 = append(v2, e)
		switch i % 3 {
		case 1:
			v2 = append(v2, itemEvent(t, event.ItemUpdated, e, map[string]any{"version": 2, "title": "v2 update"}))
		case 2:
			v2 = append(v2, itemEvent(t, event.ItemDeleted, e, map[string]any{"version": 2}))
		}
	}
	s.applyToItems(t, v2, itemwriter.HardDeleteQuarter)
	for i, e := range v2 {
		v2[i] = asVersion2(t, e, "Item")
	}
	odd := asVersion2(t, itemEvent(t, event.ItemUpdated, created[0], map[string]any{"version": 9}), "Document")
	s.produce(t, append(v2, odd))
	group := infra.NewGroup(t)
	c := s.startIndexer(t, "indexer", group)
	s.waitIndexEqualsTable(t, time.Minute, c)
	c.waitMetric("atlas_consumer_dead_lettered_total", 1, 30*time.Second)
	s.waitCaughtUp(t, group, 30*time.Second, c)
	h := headers(readTopic(t, s.dlq, 1, 30*time.Second)[0])
	if h[runner.HeaderErrorKind] != indexer.KindUnreadableEntity {
		t.Fatalf("dead letter kind %q (%s), want %s", h[runner.HeaderErrorKind], h[runner.HeaderError], indexer.KindUnreadableEntity)
	}
	if n, _ := c.metric("atlas_consumer_dead_lettered_total"); n != 1 {
		t.Fatalf("%v dead letters, want only the event whose entity is not an Item", n)
	}
	c.stop()
}

// asVersion2 re-encodes e as envelope version 2 with a field version 1 does not have,
// and the given entity type, and decodes it as a consumer would.
func asVersion2(t testing.TB, e *event.Envelope, entityType string) *event.Envelope {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["version"] = 2
	m["schema_url"] = "https://atlas.example/events/v2"
	m["entity"].(map[string]any)["type"] = entityType
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	out, err := event.Decode(raw)
	if err != nil {
		t.Fatalf("a version 2 envelope: %v", err)
	}
	return out
}

// keepSearching searches the index every 500 ms until the returned function is called.
func (s *indexSetup) keepSearching(t testing.TB, index string) func() {
	es := s.search(t)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if resp, err := es.Search(es.Search.WithIndex(index)); err == nil {
				resp.Body.Close()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

// switchAlias points alias at index to, removing it from index from ("" when it is new),
// in one request.
func (s *indexSetup) switchAlias(t testing.TB, alias, from, to string) {
	t.Helper()
	actions := []any{map[string]any{"add": map[string]any{"index": to, "alias": alias}}}
	if from != "" {
		actions = append([]any{map[string]any{"remove": map[string]any{"index": from, "alias": alias}}}, actions...)
	}
	body, _ := json.Marshal(map[string]any{"actions": actions})
	es := s.search(t)
	resp, err := es.Indices.UpdateAliases(strings.NewReader(string(body)))
	if err != nil || resp.IsError() {
		t.Fatalf("switch alias %s to %s: %v %v", alias, to, err, resp)
	}
	resp.Body.Close()
}
