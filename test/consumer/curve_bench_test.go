package consumer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The consumers' cost curves (`make bench`): each consumer, with its default flags, works
// off one backlog of ATLAS_BENCH_CURVE_EVENTS events (5,000,000 by default) into a table
// or index that starts empty and grows to its full size, and the benchmark reads the
// consumer's progress every 50 ms. The rate "at" a size is the rate of the half of the
// events before it (at 1M: from event 500,000 to event 1,000,000), so every rate is
// measured on a table or index of about that size, start-up excluded. Flat: the lowest
// rate is within 15% of the highest. Peak RSS is read at each size.

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

// peakAt is the process's peak RSS (VmHWM) when the counter reached n.
func (pr *progress) peakAt(n float64) int64 {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var peak int64
	for _, s := range pr.samples {
		peak = max(peak, s.peak)
		if s.n >= n {
			break
		}
	}
	return peak
}

// curve is one consumer's measured cost curve.
type curve struct {
	name  string
	marks []int
	rates []float64 // events/s at each mark
	peaks []int64   // peak RSS (bytes) at each mark
	cpu   float64
}

func readCurve(name string, pr *progress, marks []int, cpu float64) curve {
	c := curve{name: name, marks: marks, cpu: cpu}
	for _, m := range marks {
		c.rates = append(c.rates, pr.rate(float64(m)/2, float64(m)))
		c.peaks = append(c.peaks, pr.peakAt(float64(m)))
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
	for i, m := range c.marks {
		fmt.Printf("    at %-4s %8.0f events/s   peak RSS %4.0f MiB\n", humanCount(m), c.rates[i], float64(c.peaks[i])/(1<<20))
	}
	fmt.Printf("    lowest/highest rate %.2f (goal >= 0.85); CPU %.1f s per million events\n", c.flatness(), c.cpu/float64(c.marks[len(c.marks)-1])*1e6)
}

func (c curve) rows(work string) []infra.BenchRow {
	lo, hi := slices.Min(c.rates), slices.Max(c.rates)
	return []infra.BenchRow{
		{Work: work + ": events/s, lowest vs highest of " + marksText(c.marks), Ours: lo, Other: hi, OtherName: "highest", Unit: "/s",
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

// BenchmarkAuditCostCurve is the audit consumer's cost curve, measured twice: with
// time-ordered event ids (UUIDv7, as `atlas produce` and every Atlas service make them)
// and with random ones (UUIDv4, which the contract allows), whose inserts land all over
// the primary key's index instead of at its right edge. It runs once whatever b.N is.
func BenchmarkAuditCostCurve(b *testing.B) {
	total := curveEvents()
	marks := curveMarks(total)
	var curves []curve
	for _, ids := range []struct {
		name string
		v4   bool
	}{{"UUIDv7 event ids", false}, {"UUIDv4 event ids", true}} {
		s := newSetup(b, 6)
		start := time.Now()
		produceGeneratedWith(b, s, 41, total, func(e *event.Envelope) {
			if ids.v4 {
				e.EventID = uuid.New()
			}
		})
		b.Logf("%s: produced %d events in %s", ids.name, total, time.Since(start).Round(time.Millisecond))
		c := s.startConsumer(b, "audit", infra.NewGroup(b))
		pr := watchProgress(b, c, "atlas_consumer_events_inserted_total")
		c.waitMetric("atlas_consumer_events_inserted_total", float64(total), 30*time.Minute)
		pr.finish()
		cv := readCurve("audit, "+ids.name, pr, marks, infra.ProcessCPU(b, c.cmd.Process.Pid))
		c.stop()
		if dir := os.Getenv("ATLAS_BENCH_KEEP_LOGS"); dir != "" {
			raw, _ := os.ReadFile(c.logs)
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("audit-v4-%t.log", ids.v4)), raw, 0o644)
		}
		if got := s.rowCount(b); got != total {
			b.Fatalf("audit_events has %d rows, want %d", got, total)
		}
		var table, index, buffers string
		if err := s.pool.QueryRow(context.Background(), `SELECT pg_size_pretty(pg_table_size('audit_events')),
			pg_size_pretty(pg_indexes_size('audit_events')), current_setting('shared_buffers')`).Scan(&table, &index, &buffers); err != nil {
			b.Fatal(err)
		}
		cv.name += fmt.Sprintf(" (table %s, indexes %s, shared_buffers %s)", table, index, buffers)
		curves = append(curves, cv)
	}
	fmt.Printf("\naudit consumer cost curve, %s events, default flags (one run each, same machine; Postgres %s):\n", humanCount(total), infra.PostgresDurability(b))
	var rows []infra.BenchRow
	for _, cv := range curves {
		cv.print()
		rows = append(rows, cv.rows("audit curve, "+strings.SplitN(strings.TrimPrefix(cv.name, "audit, "), " (", 2)[0])...)
	}
	v7, v4 := curves[0], curves[1]
	last := len(marks) - 1
	fmt.Printf("  at %s, random ids / time-ordered ids = %.2f\n\n", humanCount(marks[last]), v4.rates[last]/v7.rates[last])
	rows = append(rows, infra.BenchRow{Work: fmt.Sprintf("audit curve at %s: UUIDv4 vs UUIDv7 ids", humanCount(marks[last])),
		Ours: v4.rates[last], Other: v7.rates[last], OtherName: "UUIDv7", Unit: "/s"})
	infra.ReportBench(b, rows...)
}

// BenchmarkIndexerCostCurve is the indexer's cost curve: item events (creates, updates,
// deletes) of a growing set of items, the index growing with them. Runs once.
func BenchmarkIndexerCostCurve(b *testing.B) {
	total := curveEvents()
	marks := curveMarks(total)
	s := newIndexSetup(b, 6)
	start := time.Now()
	produceItemStream(b, s, 43, total)
	b.Logf("applied and published %d item events in %s", total, time.Since(start).Round(time.Millisecond))

	c := s.startIndexer(b, "indexer", infra.NewGroup(b))
	pr := watchProgress(b, c, "atlas_consumer_records_consumed_total")
	c.waitMetric("atlas_consumer_records_consumed_total", float64(total), 60*time.Minute)
	pr.finish()
	cv := readCurve("indexer", pr, marks, infra.ProcessCPU(b, c.cmd.Process.Pid))
	c.stop()
	docs, live := infra.CountDocuments(b, s.alias), liveItems(b, s)
	if docs != live {
		b.Fatalf("the index holds %d documents, the table %d live items", docs, live)
	}
	cv.name += fmt.Sprintf(" (%d documents in the index at the end)", docs)
	fmt.Printf("\nindexer cost curve, %s item events, default flags (one run, same machine; Postgres %s):\n", humanCount(total), infra.PostgresDurability(b))
	cv.print()
	fmt.Println()
	infra.ReportBench(b, cv.rows("indexer curve")...)
}

// produceGeneratedWith publishes n synthetic events, each passed through edit first,
// without holding them all in memory.
func produceGeneratedWith(b testing.TB, s *setup, seed uint64, n int, edit func(*event.Envelope)) {
	b.Helper()
	p := newAsyncProducer(b, s.topic)
	gen := eventgen.New(seed)
	for i := 0; i < n; i++ {
		env, err := gen.Next()
		if err != nil {
			b.Fatal(err)
		}
		edit(env)
		p.produce(b, env)
	}
	p.flush(b)
}

// produceItemStream applies n item events to the items table, as the Atlas API does before
// publishing, and publishes them, in slices, without holding them all in memory. One
// deleted item in four is hard-deleted.
func produceItemStream(b testing.TB, s *indexSetup, seed uint64, n int) {
	b.Helper()
	p := newAsyncProducer(b, s.topic)
	gen := eventgen.New(seed)
	ctx := context.Background()
	slice := make([]*event.Envelope, 0, 20_000)
	flush := func() {
		if err := itemwriter.Apply(ctx, s.pool, slice, func(id uuid.UUID) bool { return id[0]%4 == 0 }); err != nil {
			b.Fatal(err)
		}
		for _, e := range slice {
			p.produce(b, e)
		}
		slice = slice[:0]
	}
	for published := 0; published < n; {
		env, err := gen.Next()
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
	p.flush(b)
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
