package consumer_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/indexer"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// BenchmarkIndexer200k is the indexer's benchmark (`make bench`): 200,000 item events
// (creates, updates of hot and cold items, deletes, 5% redelivered duplicates) through
// the real broker, Postgres and search server. In the same run: bulk-loading the same
// final documents straight into the search server with the same client, and the naive
// peer (per event one SELECT and one single-document index request). Runs once.
func BenchmarkIndexer200k(b *testing.B) {
	total := 200_000
	if v := os.Getenv("ATLAS_BENCH_INDEXER_EVENTS"); v != "" {
		total, _ = strconv.Atoi(v)
	}
	const naiveEvents = 5_000
	s := newIndexSetup(b, 6)
	envs := generateItems(b, 31, total)
	for i := 0; i < len(envs); i += 10_000 {
		s.applyToItems(b, envs[i:min(i+10_000, len(envs))], func(id uuid.UUID) bool { return id[0]%4 == 0 })
	}
	stream := withDuplicates(envs, 0.05)
	start := time.Now()
	s.produce(b, stream)
	b.Logf("published %d item events (%d duplicates) in %s", len(stream), len(stream)-len(envs), time.Since(start).Round(time.Millisecond))

	// Warm-up, untimed: the same stream through the indexer into a scratch index, so the
	// search server's JVM (JIT) is warm for both sides of the comparison. The timed run
	// writes another index, so it starts from nothing: what the warm-up applied is
	// recorded for the warm-up's index and group only.
	concurrency := cmp.Or(os.Getenv("ATLAS_BENCH_BULK_CONCURRENCY"), "4")
	warmAlias := infra.NewIndexName(b)
	infra.DeleteIndexAfter(b, indexer.VersionedIndex(warmAlias))
	warmGroup := infra.NewGroup(b)
	start = time.Now()
	w := s.startIndexerAt(b, "warm-up", warmGroup, s.searchURL, warmAlias, "--batch-size", "4000", "--bulk-concurrency", concurrency)
	w.waitMetric("atlas_consumer_records_consumed_total", float64(len(stream)), 20*time.Minute)
	for infra.GroupLag(b, warmGroup, s.topic) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	w.stop()
	b.Logf("warm-up run: %s", time.Since(start).Round(time.Millisecond))

	// The reference runs once before and once after ours, so neither side gains from
	// running later on a search server that is still warming up; its rate is the mean.
	refDocsBefore, refBefore := bulkReference(b, s)

	group := infra.NewGroup(b)
	c := s.startIndexer(b, "indexer", group, "--batch-size", "4000", "--bulk-concurrency", concurrency, "--log-level", cmp.Or(os.Getenv("ATLAS_BENCH_LOG_LEVEL"), "info"))
	start = time.Now()
	c.waitMetric("atlas_consumer_records_consumed_total", float64(len(stream)), 20*time.Minute)
	for infra.GroupLag(b, group, s.topic) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	ours := time.Since(start)
	rss := peakRSS(b, c)
	if os.Getenv("ATLAS_BENCH_LOG_LEVEL") == "debug" {
		raw, _ := os.ReadFile(c.logs)
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "indexer batch") || strings.Contains(line, "batch done") {
				fmt.Println(line)
			}
		}
	}
	indexed, _ := c.metric("atlas_consumer_documents_indexed_total")
	deleted, _ := c.metric("atlas_consumer_documents_deleted_total")
	c.stop()
	if diff := infra.IndexDiff(b, s.pool, s.alias); diff != "" {
		b.Fatalf("the index does not equal the table: %s", diff)
	}

	refDocs, refAfter := bulkReference(b, s)
	if refDocs != refDocsBefore {
		b.Fatalf("the reference loaded %d documents before ours and %d after", refDocsBefore, refDocs)
	}
	ref := (refBefore + refAfter) / 2
	naive := naiveIndexer(b, s, envs[:naiveEvents])

	eventsRate := float64(len(stream)) / ours.Seconds()
	docsRate := (indexed + deleted) / ours.Seconds()
	refRate := float64(refDocs) / ref.Seconds()
	naiveRate := float64(naiveEvents) / naive.Seconds()
	b.ReportMetric(eventsRate, "events/s")
	b.ReportMetric(docsRate, "docs/s")
	b.ReportMetric(refRate, "ref_docs/s")
	b.ReportMetric(naiveRate, "naive_events/s")
	b.ReportMetric(docsRate/refRate, "x_reference")
	b.ReportMetric(eventsRate/naiveRate, "x_naive")
	b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MiB")
	fmt.Printf("\nindexer benchmark, %d item events (one run, same machine; Postgres %s):\n", len(stream), infra.PostgresSettings(b))
	fmt.Printf("  ours: %8.0f events/s, %8.0f document operations/s (%0.f writes + %0.f deletes in %s)\n", eventsRate, docsRate, indexed, deleted, ours.Round(time.Millisecond))
	fmt.Printf("  reference, bulk-loading the %d final documents directly: %8.0f docs/s (mean of %s before ours and %s after)\n",
		refDocs, refRate, refBefore.Round(time.Millisecond), refAfter.Round(time.Millisecond))
	fmt.Printf("  naive, one SELECT + one index request per event: %8.0f events/s (%d events, %s)\n", naiveRate, naiveEvents, naive.Round(time.Millisecond))
	fmt.Printf("  ours/reference (document operations/s) = %.2f (target >= 0.6); time to the final index, reference/ours = %.2f\n", docsRate/refRate, ref.Seconds()/ours.Seconds())
	fmt.Printf("  ours/naive (events/s) = %.1f (target >= 15); consumer peak RSS = %.0f MiB\n\n", eventsRate/naiveRate, float64(rss)/(1<<20))
	work := fmt.Sprintf("indexer, %s item events", humanCount(len(stream)/1000*1000))
	infra.ReportBench(b,
		infra.BenchRow{Work: work + ": document operations/s vs bulk load", Ours: docsRate, Other: refRate, OtherName: "bulk load", Unit: "/s",
			Goal: "ratio >= 0.6", Met: docsRate/refRate >= 0.6},
		infra.BenchRow{Work: work + ": events/s vs naive", Ours: eventsRate, Other: naiveRate, OtherName: "naive", Unit: "/s",
			Goal: "ratio >= 15", Met: eventsRate/naiveRate >= 15},
		infra.BenchRow{Work: work + ": consumer peak RSS", Ours: float64(rss) / (1 << 20), Unit: "MiB", Goal: "< 150 MiB", Met: float64(rss)/(1<<20) < 150})
}

// withDuplicates returns envs with a fraction of them delivered a second time, a little later.
func withDuplicates(envs []*event.Envelope, fraction float64) []*event.Envelope {
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]*event.Envelope, 0, len(envs)+int(float64(len(envs))*fraction))
	for i, e := range envs {
		out = append(out, e)
		if rng.Float64() < fraction && i > 100 {
			out = append(out, envs[i-rng.IntN(100)])
		}
	}
	return out
}

// bulkReference loads the live items, as documents, into a fresh index in bulk requests of
// the indexer's batch size, with the same client, and times it.
func bulkReference(b testing.TB, s *indexSetup) (int, time.Duration) {
	b.Helper()
	ctx := context.Background()
	es, alias := freshIndex(b)
	rows, err := s.pool.Query(ctx, `SELECT id, collection_id, title, content, source_url, created_at, updated_at, version FROM items WHERE deleted_at IS NULL`)
	if err != nil {
		b.Fatal(err)
	}
	var docs [][]byte
	for rows.Next() {
		var id, coll uuid.UUID
		var title, content string
		var src *string
		var created, updated time.Time
		var version int64
		if err := rows.Scan(&id, &coll, &title, &content, &src, &created, &updated, &version); err != nil {
			b.Fatal(err)
		}
		meta, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": alias, "_id": id.String(), "version": version, "version_type": "external_gte"}})
		doc, _ := json.Marshal(map[string]any{"id": id.String(), "collection_id": coll.String(), "title": title, "content": content,
			"source_url": src, "created_at": created.UTC().Format(time.RFC3339Nano), "updated_at": updated.UTC().Format(time.RFC3339Nano), "version": version})
		docs = append(docs, append(append(append(meta, '\n'), doc...), '\n'))
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < len(docs); i += 4000 {
		body := bytes.Join(docs[i:min(i+4000, len(docs))], nil)
		resp, err := es.Bulk(bytes.NewReader(body), es.Bulk.WithContext(ctx))
		if err != nil {
			b.Fatal(err)
		}
		var res struct {
			Errors bool `json:"errors"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.IsError() || res.Errors {
			b.Fatalf("reference bulk: %s %v errors=%v", resp.Status(), err, res.Errors)
		}
	}
	return len(docs), time.Since(start)
}

// naiveIndexer times the indexer most tutorials write: per event, one SELECT of the item
// and one single-document index (or delete) request, on a fresh index.
func naiveIndexer(b testing.TB, s *indexSetup, envs []*event.Envelope) time.Duration {
	b.Helper()
	ctx := context.Background()
	es, alias := freshIndex(b)
	topic := infra.NewTopic(b, 6)
	cl := infra.KafkaClient(b, kgo.ProducerLinger(5*time.Millisecond))
	var recs []*kgo.Record
	for _, e := range envs {
		r, err := event.Record(topic, e)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	consumer := infra.KafkaClient(b, kgo.ConsumerGroup(infra.NewGroup(b)), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	start := time.Now()
	for done := 0; done < len(envs); {
		fetches := consumer.PollFetches(ctx)
		for _, rec := range fetches.Records() {
			e, err := event.Decode(rec.Value)
			if err != nil {
				b.Fatal(err)
			}
			var title, content string
			var version int64
			var deletedAt *time.Time
			err = s.pool.QueryRow(ctx, `SELECT title, content, version, deleted_at FROM items WHERE id = $1`, e.Entity.ID).Scan(&title, &content, &version, &deletedAt)
			id := e.Entity.ID.String()
			if err != nil || deletedAt != nil {
				resp, err := es.Delete(alias, id, es.Delete.WithContext(ctx))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			} else {
				doc, _ := json.Marshal(map[string]any{"id": id, "title": title, "content": content, "version": version})
				resp, err := es.Index(alias, bytes.NewReader(doc), es.Index.WithDocumentID(id), es.Index.WithContext(ctx),
					es.Index.WithVersion(int(version)), es.Index.WithVersionType("external_gte"))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			done++
		}
	}
	return time.Since(start)
}

// freshIndex creates an index alias (and its versioned index) of its own for the
// caller, removed when it ends.
func freshIndex(b testing.TB) (*elasticsearch.Client, string) {
	b.Helper()
	es := infra.SearchClient(b)
	alias := infra.NewIndexName(b)
	infra.DeleteIndexAfter(b, indexer.VersionedIndex(alias))
	if err := indexer.EnsureIndex(context.Background(), es, alias); err != nil {
		b.Fatal(err)
	}
	return es, alias
}
