package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The consumers' cost curves (`make bench`): each consumer, with its default flags, works
// off one stream of events into a table or index that starts empty and grows, and the
// benchmark reads its rate at 100k, 1M and 5M events (ATLAS_BENCH_CURVE_EVENTS, 5,000,000
// by default, is the last size).
//
// The rate "at" a size is measured in a window of events centred on it (at 1M: from
// 800,000 to 1,200,000; at 100k: from 50,000 to 150,000), worked off by a fresh consumer
// process in the same group; a fill phase before each window, unmeasured, brings the table
// or index to the window's start. Before each window the servers are brought to the same
// state: a Postgres CHECKPOINT (for the indexer, after a VACUUM of the items table the
// benchmark updated as the Atlas API would, and a flush of the search index), then the
// kernel's dirty pages written out (sync). Without that, a curve measured in one run compares a start on
// an idle server (its shared buffers empty, no checkpoint yet, gigabytes of writes absorbed
// by the page cache) with a middle spent under the first checkpoint and the writeback of
// what was absorbed: measured so on this machine, 54k events/s in the first tenth and 40k
// in the seventh, on a UUIDv4 run as flat (41k-44k) as its server was already busy. The
// first tenth of each window is left out of its rate (the process's start and group join).
// Flat: the lowest rate is within 15% of the highest. Peak RSS is the highest of every
// process so far, fill phases included.

// curveMarks are the sizes the curves are read at: 100k, 1M and 5M, those below total,
// and total.
func curveMarks(total int) []int {
	var marks []int
	for _, m := range []int{100_000, 1_000_000, 5_000_000} {
		if m < total {
			marks = append(marks, m)
		}
	}
	return append(marks, total)
}

func curveEvents() int {
	if v, err := strconv.Atoi(os.Getenv("ATLAS_BENCH_CURVE_EVENTS")); err == nil && v > 0 {
		return v
	}
	return 5_000_000
}

// curveWindowEvents is the widest window a rate is measured in.
const curveWindowEvents = 400_000

// curveWindow is where the rate at mark is measured: [lo, hi), centred on mark, at most
// curveWindowEvents wide and no wider than mark.
type curveWindow struct{ mark, lo, hi int }

func curveWindows(marks []int) []curveWindow {
	var ws []curveWindow
	for _, m := range marks {
		w := min(curveWindowEvents, m)
		ws = append(ws, curveWindow{mark: m, lo: m - w/2, hi: m + w/2})
	}
	return ws
}

// progress samples a consumer's counter and resident memory while it works.
type progress struct {
	sample  func()
	mu      sync.Mutex
	samples []progressSample
	stop    chan struct{}
	done    chan struct{}
}

type progressSample struct {
	at   time.Time
	n    float64
	rss  int64 // VmRSS
	peak int64 // VmHWM
}

// watchProgress samples metric (a counter of p) and p's memory every 50 ms until stopped.
func watchProgress(b testing.TB, p *consumerProc, metric string) *progress {
	pr := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	pr.sample = func() {
		n, err := p.metric(metric)
		if err != nil {
			return
		}
		rss, peak, err := infra.ReadProcessMemory(p.cmd.Process.Pid)
		if err != nil {
			return // the consumer is gone
		}
		pr.mu.Lock()
		pr.samples = append(pr.samples, progressSample{at: time.Now(), n: n, rss: rss, peak: peak})
		pr.mu.Unlock()
	}
	go func() {
		defer close(pr.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pr.stop:
				return
			case <-tick.C:
			}
			pr.sample()
		}
	}()
	b.Cleanup(pr.finish)
	return pr
}

// finish stops sampling, after one last sample (the consumer may have reached its total
// since the previous one).
func (pr *progress) finish() {
	select {
	case <-pr.stop:
		return
	default:
		close(pr.stop)
	}
	<-pr.done
	pr.sample()
}

// timeAt is when the counter reached n, interpolated between the two samples around it.
func (pr *progress) timeAt(n float64) (time.Time, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	i := slices.IndexFunc(pr.samples, func(s progressSample) bool { return s.n >= n })
	switch {
	case i < 0:
		return time.Time{}, false
	case i == 0:
		return pr.samples[0].at, true
	}
	a, c := pr.samples[i-1], pr.samples[i]
	frac := (n - a.n) / (c.n - a.n)
	return a.at.Add(time.Duration(frac * float64(c.at.Sub(a.at)))), true
}

// rate is the counter's rate between the values from and to.
func (pr *progress) rate(from, to float64) float64 {
	a, ok1 := pr.timeAt(from)
	c, ok2 := pr.timeAt(to)
	if !ok1 || !ok2 || !c.After(a) {
		return 0
	}
	return (to - from) / c.Sub(a).Seconds()
}

// peak is the process's peak RSS (VmHWM) at its last sample.
func (pr *progress) peak() int64 {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var peak int64
	for _, s := range pr.samples {
		peak = max(peak, s.peak)
	}
	return peak
}

// curve is one consumer's measured cost curve.
type curve struct {
	name    string
	windows []curveWindow
	rates   []float64 // events/s in each window
	notes   []string  // what the servers did in each window (curveRun.observe)
	peaks   []int64   // peak RSS (bytes) of every process up to each window's end
	cpu     float64   // CPU seconds of every process
	total   int       // events worked off
}

// curveRun is what a cost curve needs of one consumer: publish the next n events of its
// stream, start a consumer process in the curve's group, bring the servers to the same
// state before a window.
type curveRun struct {
	publish func(n int)
	start   func() *consumerProc
	settle  func()
	metric  string // the counter of events the consumer worked off
	// observe, when set, is called before a measured window; what it returns is called
	// after the window with the events worked off and says what the servers did for them.
	observe func() func(events int) string
	// inside, when set, says what the window's consumer process spent its time on, from
	// its metrics before it stops.
	inside func(p *consumerProc) string
}

// measureCurve works the stream off in fill phases and measured windows, as the comment at
// the top of this file says.
func measureCurve(b testing.TB, name string, marks []int, run curveRun) curve {
	b.Helper()
	c := curve{name: name, windows: curveWindows(marks)}
	var peak int64
	// phase runs n events through a fresh consumer process, returning its progress
	var note string
	phase := func(n int, measured bool) *progress {
		run.publish(n)
		var observed func(int) string
		if measured {
			run.settle()
			if run.observe != nil {
				observed = run.observe()
			}
		}
		p := run.start()
		pr := watchProgress(b, p, run.metric)
		p.waitMetric(run.metric, float64(n), 30*time.Minute)
		pr.finish()
		cpu := infra.ProcessCPU(b, p.cmd.Process.Pid)
		c.cpu += cpu
		if measured {
			note = fmt.Sprintf("consumer CPU %.3f ms/event", cpu*1000/float64(n))
			if run.inside != nil {
				note += ", " + run.inside(p)
			}
		}
		p.stop()
		if observed != nil {
			note += "; " + observed(n)
		}
		peak = max(peak, pr.peak())
		c.total += n
		return pr
	}
	for _, w := range c.windows {
		if fill := w.lo - c.total; fill > 0 {
			phase(fill, false)
		}
		n := w.hi - w.lo
		pr := phase(n, true)
		c.rates = append(c.rates, pr.rate(float64(n)/10, float64(n)))
		c.peaks = append(c.peaks, peak)
		c.notes = append(c.notes, note)
	}
	return c
}

// flatness is the lowest rate over the highest.
func (c curve) flatness() float64 {
	lo, hi := slices.Min(c.rates), slices.Max(c.rates)
	if hi == 0 {
		return 0
	}
	return lo / hi
}

func (c curve) peakMiB() float64 { return float64(slices.Max(c.peaks)) / (1 << 20) }

func (c curve) print() {
	fmt.Printf("  %s:\n", c.name)
	for i, w := range c.windows {
		fmt.Printf("    at %-4s %8.0f events/s  (events %s to %s)   peak RSS %4.0f MiB   %s\n",
			humanCount(w.mark), c.rates[i], humanCount(w.lo), humanCount(w.hi), float64(c.peaks[i])/(1<<20), c.notes[i])
	}
	fmt.Printf("    lowest/highest rate %.2f (goal >= 0.85); CPU %.1f s per million events\n", c.flatness(), c.cpu/float64(c.total)*1e6)
}

func (c curve) marks() []int {
	var m []int
	for _, w := range c.windows {
		m = append(m, w.mark)
	}
	return m
}

func (c curve) rows(work string) []infra.BenchRow {
	lo, hi := slices.Min(c.rates), slices.Max(c.rates)
	return []infra.BenchRow{
		{Work: work + ": events/s, lowest vs highest of " + marksText(c.marks()), Ours: lo, Other: hi, OtherName: "highest", Unit: "/s",
			Goal: "ratio >= 0.85", Met: c.flatness() >= 0.85},
		{Work: work + ": consumer peak RSS", Ours: c.peakMiB(), Unit: "MiB", Goal: "< 150 MiB", Met: c.peakMiB() < 150},
	}
}

func marksText(marks []int) string {
	var s []string
	for _, m := range marks {
		s = append(s, humanCount(m))
	}
	return strings.Join(s, "/")
}

// settlePostgres brings Postgres and the kernel to the state every window starts from:
// a checkpoint done, the dirty pages written out.
func settlePostgres(b testing.TB, s *setup) {
	b.Helper()
	if _, err := s.pool.Exec(context.Background(), "CHECKPOINT"); err != nil {
		b.Fatalf("checkpoint: %v", err)
	}
	syscall.Sync()
}

// walStats is Postgres's count of WAL records, full-page images, bytes and syncs so far,
// and the milliseconds spent syncing (0 unless track_wal_io_timing is on).
type walStats struct{ records, fpi, bytes, syncs, syncMillis float64 }

func readWAL(b testing.TB, s *setup) walStats {
	b.Helper()
	var w walStats
	if err := s.pool.QueryRow(context.Background(), "SELECT wal_records, wal_fpi, wal_bytes, wal_sync, wal_sync_time FROM pg_stat_wal").
		Scan(&w.records, &w.fpi, &w.bytes, &w.syncs, &w.syncMillis); err != nil {
		b.Fatalf("read pg_stat_wal: %v", err)
	}
	return w
}

// observeWAL says, per event of a window, how much WAL Postgres wrote and how many of its
// records were full-page images: the first change of a page after a checkpoint logs the
// whole page (full_page_writes), so an insert that lands on a page no insert of this
// checkpoint cycle touched yet costs a page of WAL, and the random keys of an index that
// outgrows what one window touches make that most inserts.
func observeWAL(b testing.TB, s *setup) func() func(int) string {
	return func() func(int) string {
		before := readWAL(b, s)
		return func(events int) string {
			after := readWAL(b, s)
			n := float64(events)
			note := fmt.Sprintf("WAL %.1f kB/event, %.2f full-page images/event", (after.bytes-before.bytes)/n/1000, (after.fpi-before.fpi)/n)
			if syncs := after.syncs - before.syncs; syncs > 0 && after.syncMillis > 0 {
				// a commit waits for its WAL's sync: a slower disk, a slower window
				note += fmt.Sprintf(", %.0f WAL syncs of %.2f ms", syncs, (after.syncMillis-before.syncMillis)/syncs)
			}
			return note
		}
	}
}

// auditCurveVariant is one way of measuring the audit curve: which event ids, which table.
type auditCurveVariant struct {
	key, name string
	v4        bool // random (UUIDv4) event ids instead of time-ordered ones
	oneTable  bool // audit_events as one table, as an install from before migration 00005 has it
}

// olderInstall migrates s's database the way an install from before migration 00005 is:
// audit_events held rows when 00005 ran, so it stayed one table keyed by event_id. (The
// row is deleted again: the curve starts from an empty table.)
func olderInstall(b testing.TB, s *setup) {
	b.Helper()
	ctx := context.Background()
	m, err := migrations.Open(s.dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.UpTo(ctx, 4); err != nil {
		b.Fatal(err)
	}
	const row = `INSERT INTO audit_events (event_id, event_type, version, occurred_at, entity_type, entity_id, data, envelope,
		kafka_topic, kafka_partition, kafka_offset) VALUES (gen_random_uuid(), 'ItemCreated', 1, now(), 'item', gen_random_uuid(), '{}', '\x7b7d', 't', 0, 0)`
	if _, err := s.pool.Exec(ctx, row); err != nil {
		b.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM audit_events`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAuditCostCurve is the audit consumer's cost curve on audit_events as the
// migrations make it (partitioned by day), measured with time-ordered event ids (UUIDv7,
// as `atlas produce` and every Atlas service make them) and with random ones (UUIDv4, which
// the contract allows), whose inserts land all over the primary key's index instead of at
// its right edge; then, for comparison, with random ids into the single table of an
// install from before migration 00005. In every variant occurred_at advances one
// simulated day per million events (eventsPerDay), as in a replay of a history that grew
// at that pace. It runs once whatever b.N is; ATLAS_BENCH_CURVE_IDS (v7, v4, v4-one-table,
// comma-separated) runs only some variants.
func BenchmarkAuditCostCurve(b *testing.B) {
	marks := curveMarks(curveEvents())
	var curves []curve
	variants := []auditCurveVariant{
		{key: "v7", name: "UUIDv7 event ids"},
		{key: "v4", name: "UUIDv4 event ids", v4: true},
		{key: "v4-one-table", name: "UUIDv4 event ids, one table (an install from before 00005)", v4: true, oneTable: true},
	}
	byKey := map[string]curve{}
	for _, v := range variants {
		if only := os.Getenv("ATLAS_BENCH_CURVE_IDS"); only != "" && !slices.Contains(strings.Split(only, ","), v.key) {
			continue // a developer's shortcut: some of the curves
		}
		s := newSetup(b, 6)
		day0 := time.Now().UTC().Truncate(24 * time.Hour)
		if v.oneTable {
			olderInstall(b, s)
		}
		group := infra.NewGroup(b)
		seq := 0
		events := newGeneratedStream(b, s, 41, func(e *event.Envelope) {
			if v.v4 {
				e.EventID = uuid.New()
			}
			e.OccurredAt = day0.Add(time.Duration(seq) * (24 * time.Hour / eventsPerDay))
			seq++
		})
		phase := 0
		cv := measureCurve(b, "audit, "+v.name, marks, curveRun{
			publish: events.publish,
			start: func() *consumerProc {
				phase++
				c := s.startConsumer(b, fmt.Sprintf("audit-%d", phase), group)
				if dir := os.Getenv("ATLAS_BENCH_KEEP_LOGS"); dir != "" {
					b.Cleanup(func() {
						raw, _ := os.ReadFile(c.logs)
						_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("audit-%s-%d.log", v.key, phase)), raw, 0o644)
					})
				}
				return c
			},
			settle: func() {
				// The fill before a window leaves autovacuum a debt whose size and timing vary
				// (an insert-only table is vacuumed once a share of its rows is new), paid inside
				// one window and not another; the same window of the same code read 50,000 and
				// 36,800 events/s in two runs. Each window starts without it, like the checkpoint.
				if _, err := s.pool.Exec(context.Background(), "VACUUM audit_events"); err != nil {
					b.Fatalf("vacuum audit_events: %v", err)
				}
				settlePostgres(b, s)
			},
			observe: observeWAL(b, s),
			metric:  "atlas_consumer_events_inserted_total",
		})
		if got := s.rowCount(b); got != cv.total {
			b.Fatalf("audit_events has %d rows, want %d", got, cv.total)
		}
		// a partitioned table's own size is 0: its partitions hold the rows
		var table, index string
		if err := s.pool.QueryRow(context.Background(), `SELECT pg_size_pretty(sum(pg_table_size(r))), pg_size_pretty(sum(pg_indexes_size(r)))
			FROM (SELECT 'audit_events'::regclass AS r UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_events'::regclass) t`).Scan(&table, &index); err != nil {
			b.Fatal(err)
		}
		cv.name += fmt.Sprintf(" (%s events: table %s, indexes %s)", humanCount(cv.total), table, index)
		curves = append(curves, cv)
		byKey[v.key] = cv
	}
	fmt.Printf("\naudit consumer cost curve, default flags (one run each, same machine; Postgres %s; occurred_at advancing a day per %s events):\n",
		infra.PostgresSettings(b), humanCount(eventsPerDay))
	var rows []infra.BenchRow
	for _, cv := range curves {
		cv.print()
		rows = append(rows, cv.rows("audit curve, "+strings.SplitN(strings.TrimPrefix(cv.name, "audit, "), " (", 2)[0])...)
	}
	last := len(marks) - 1
	at := humanCount(marks[last])
	if v7, v4 := byKey["v7"], byKey["v4"]; v7.rates != nil && v4.rates != nil {
		fmt.Printf("  at %s, random ids / time-ordered ids = %.2f\n", at, v4.rates[last]/v7.rates[last])
		rows = append(rows, infra.BenchRow{Work: fmt.Sprintf("audit curve at %s: UUIDv4 vs UUIDv7 ids", at),
			Ours: v4.rates[last], Other: v7.rates[last], OtherName: "UUIDv7", Unit: "/s"})
	}
	if daily, one := byKey["v4"], byKey["v4-one-table"]; daily.rates != nil && one.rates != nil {
		fmt.Printf("  at %s, UUIDv4 ids into the table partitioned by day / into one table = %.2f\n", at, daily.rates[last]/one.rates[last])
		rows = append(rows, infra.BenchRow{Work: fmt.Sprintf("audit curve at %s, UUIDv4 ids: partitioned by day vs one table", at),
			Ours: daily.rates[last], Other: one.rates[last], OtherName: "one table", Unit: "/s"})
	}
	fmt.Println()
	infra.ReportBench(b, rows...)
}

// eventsPerDay is the pace of the audit curve's simulated clock: occurred_at advances a day
// per this many events.
const eventsPerDay = 1_000_000

// BenchmarkIndexerCostCurve is the indexer's cost curve: item events (creates, updates,
// deletes) of a growing set of items, the index growing with them. Runs once.
func BenchmarkIndexerCostCurve(b *testing.B) {
	marks := curveMarks(curveEvents())
	warmUpSearch(b)
	s := newIndexSetup(b, 6)
	group := infra.NewGroup(b)
	items := newItemStream(b, s, 43)
	phase := 0
	cv := measureCurve(b, "indexer", marks, curveRun{
		publish: items.publish,
		start: func() *consumerProc {
			phase++
			return s.startIndexer(b, fmt.Sprintf("indexer-%d", phase), group)
		},
		settle: func() {
			// The items table's updates are the Atlas API's (itemStream plays it); their
			// vacuum is owed before the window, not worked off by autovacuum inside it: in a
			// run with autovacuum off for items, the rate at 5M went from 12,448 to 14,053
			// events/s and the full-page images from 0.20 to 0.12 per event.
			if _, err := s.pool.Exec(context.Background(), "VACUUM items"); err != nil {
				b.Fatalf("vacuum items: %v", err)
			}
			s.engine.Flush(b, s.alias)
			settlePostgres(b, s.setup)
		},
		observe: observeBoth(observeWAL(b, s.setup), observeSearch(b, s)),
		inside: func(p *consumerProc) string {
			// the bulk requests' seconds per second of batch: a batch's bulk requests run
			// concurrently, so above 1 the search server's answers are the batches' time; the
			// rest is reading the items from Postgres, recording the applied events, and the
			// records themselves
			bulk, err1 := p.metric("atlas_consumer_bulk_duration_seconds_sum")
			batches, err2 := p.metric("atlas_consumer_batch_duration_seconds_sum")
			if err := errors.Join(err1, err2); err != nil || batches == 0 {
				b.Fatalf("the indexer's bulk and batch durations: %v", err)
			}
			return fmt.Sprintf("bulk request time / batch time %.2f", bulk/batches)
		},
		metric: "atlas_consumer_records_consumed_total",
	})
	docs, live := infra.CountDocuments(b, s.alias), liveItems(b, s)
	if docs != live {
		b.Fatalf("the index holds %d documents, the table %d live items", docs, live)
	}
	cv.name += fmt.Sprintf(" (%s item events: %d documents in the index at the end)", humanCount(cv.total), docs)
	fmt.Printf("\nindexer cost curve, default flags (one run, same machine; Postgres %s):\n", infra.PostgresSettings(b))
	cv.print()
	fmt.Println()
	infra.ReportBench(b, cv.rows("indexer curve")...)
}

// observeBoth says what both observers saw.
func observeBoth(first, second func() func(int) string) func() func(int) string {
	return func() func(int) string {
		a, b := first(), second()
		return func(events int) string { return a(events) + "; " + b(events) }
	}
}

// searchStats is what the search server has spent so far: its process's CPU, and the
// index's time in indexing (the write path of each document: lookup of its id, version
// check, analysis) and in merges, and its segments now.
type searchStats struct{ cpuMillis, indexMillis, mergeMillis, segments float64 }

func readSearchStats(b testing.TB, s *indexSetup) searchStats {
	b.Helper()
	es := s.search(b)
	var st searchStats
	var nodes struct {
		Nodes map[string]struct {
			Process struct {
				CPU struct {
					TotalInMillis float64 `json:"total_in_millis"`
				} `json:"cpu"`
			} `json:"process"`
		} `json:"nodes"`
	}
	resp, err := es.Nodes.Stats(es.Nodes.Stats.WithMetric("process"))
	if err != nil {
		b.Fatalf("search server's node stats: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&nodes)
	resp.Body.Close()
	if err != nil || resp.IsError() {
		b.Fatalf("search server's node stats: %s %v", resp.Status(), err)
	}
	for _, n := range nodes.Nodes {
		st.cpuMillis += n.Process.CPU.TotalInMillis
	}
	var index struct {
		All struct {
			Primaries struct {
				Indexing struct {
					IndexTimeInMillis float64 `json:"index_time_in_millis"`
				} `json:"indexing"`
				Merges struct {
					TotalTimeInMillis float64 `json:"total_time_in_millis"`
				} `json:"merges"`
				Segments struct {
					Count float64 `json:"count"`
				} `json:"segments"`
			} `json:"primaries"`
		} `json:"_all"`
	}
	resp, err = es.Indices.Stats(es.Indices.Stats.WithIndex(s.alias), es.Indices.Stats.WithMetric("indexing", "merge", "segments"))
	if err != nil {
		b.Fatalf("index stats of %s: %v", s.alias, err)
	}
	err = json.NewDecoder(resp.Body).Decode(&index)
	resp.Body.Close()
	if err != nil || resp.IsError() {
		b.Fatalf("index stats of %s: %s %v", s.alias, resp.Status(), err)
	}
	p := index.All.Primaries
	st.indexMillis, st.mergeMillis, st.segments = p.Indexing.IndexTimeInMillis, p.Merges.TotalTimeInMillis, p.Segments.Count
	return st
}

// observeSearch says, per event of a window, what the search server spent: its whole
// process's CPU, and the index's indexing and merge time; and how many segments the index
// had at the window's end. If the indexer's rate falls as the index grows while Postgres's
// side stays flat, these say whether the search server's cost per event grew.
func observeSearch(b testing.TB, s *indexSetup) func() func(int) string {
	return func() func(int) string {
		before := readSearchStats(b, s)
		return func(events int) string {
			after := readSearchStats(b, s)
			n := float64(events)
			return fmt.Sprintf("search server CPU %.3f ms/event, indexing %.3f ms/event, merges %.3f ms/event, %0.f segments",
				(after.cpuMillis-before.cpuMillis)/n, (after.indexMillis-before.indexMillis)/n, (after.mergeMillis-before.mergeMillis)/n, after.segments)
		}
	}
}

// generatedStream publishes synthetic events, each passed through edit first, without
// holding them all in memory. Each publish continues the same stream.
type generatedStream struct {
	b    testing.TB
	p    *asyncProducer
	gen  *eventgen.Generator
	edit func(*event.Envelope)
}

func newGeneratedStream(b testing.TB, s *setup, seed uint64, edit func(*event.Envelope)) *generatedStream {
	return &generatedStream{b: b, p: newAsyncProducer(b, s.topic), gen: eventgen.New(seed), edit: edit}
}

func (st *generatedStream) publish(n int) {
	st.b.Helper()
	for range n {
		env, err := st.gen.Next()
		if err != nil {
			st.b.Fatal(err)
		}
		st.edit(env)
		st.p.produce(st.b, env)
	}
	st.p.flush(st.b)
}

// warmUpSearch has the search server index 200,000 item events into a throw-away index
// first. Its JVM compiles its hot paths in the first hundred thousand documents it is sent:
// on a server just started, the indexer's rate at 100k read 11,013 events/s, on one that
// had indexed before 20,583, while the rate at 1M was the same (15,584 and 15,400). A
// server in production has long compiled them; the curve measures the index's size.
func warmUpSearch(b testing.TB) {
	b.Helper()
	const n = 200_000
	s := newIndexSetup(b, 6)
	newItemStream(b, s, 44).publish(n)
	c := s.startIndexer(b, "indexer-warm-up", infra.NewGroup(b))
	c.waitMetric("atlas_consumer_records_consumed_total", n, 10*time.Minute)
	c.stop()
}

// itemStream applies item events to the items table, as the Atlas API does before
// publishing, and publishes them, in slices, without holding them all in memory. One
// deleted item in four is hard-deleted. Each publish continues the same stream.
type itemStream struct {
	b   testing.TB
	s   *indexSetup
	p   *asyncProducer
	gen *eventgen.Generator
}

func newItemStream(b testing.TB, s *indexSetup, seed uint64) *itemStream {
	return &itemStream{b: b, s: s, p: newAsyncProducer(b, s.topic), gen: eventgen.New(seed)}
}

func (st *itemStream) publish(n int) {
	b := st.b
	b.Helper()
	ctx := context.Background()
	slice := make([]*event.Envelope, 0, 20_000)
	flush := func() {
		if err := itemwriter.Apply(ctx, st.s.pool, slice, func(id uuid.UUID) bool { return id[0]%4 == 0 }); err != nil {
			b.Fatal(err)
		}
		for _, e := range slice {
			st.p.produce(b, e)
		}
		slice = slice[:0]
	}
	for published := 0; published < n; {
		env, err := st.gen.Next()
		if err != nil {
			b.Fatal(err)
		}
		if env.Entity.Type != event.EntityItem {
			continue
		}
		slice = append(slice, env)
		published++
		if len(slice) == cap(slice) {
			flush()
		}
	}
	flush()
	st.p.flush(b)
}

// asyncProducer publishes envelopes without waiting for each, keeping the first error.
type asyncProducer struct {
	cl     *kgo.Client
	topic  string
	failed atomic.Value
}

func newAsyncProducer(b testing.TB, topic string) *asyncProducer {
	return &asyncProducer{cl: infra.KafkaClient(b, kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(50_000)), topic: topic}
}

func (p *asyncProducer) produce(b testing.TB, env *event.Envelope) {
	rec, err := event.Record(p.topic, env)
	if err != nil {
		b.Fatal(err)
	}
	p.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			p.failed.CompareAndSwap(nil, err)
		}
	})
}

// flush waits for every record and fails on the first error.
func (p *asyncProducer) flush(b testing.TB) {
	b.Helper()
	if err := p.cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err, _ := p.failed.Load().(error); err != nil {
		b.Fatalf("produce: %v", err)
	}
}

// liveItems counts the items that are not deleted.
func liveItems(b testing.TB, s *indexSetup) int {
	b.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM items WHERE deleted_at IS NULL").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
