// Package consumer_test runs the real atlas binary as consumer processes against the
// real Kafka broker and Postgres server of the test stack.
package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// atlasBinary is the atlas binary the tests run.
func atlasBinary(t testing.TB) string { return infra.AtlasBinary(t) }

// setup is one test's topic, dead-letter topic and database.
type setup struct {
	topic, dlq, dsn string
	brokers         []string
	pool            *pgxpool.Pool
}

func newSetup(t testing.TB, partitions int32, topicConfigs ...string) *setup {
	t.Helper()
	s := &setup{brokers: infra.KafkaBrokers(t)}
	s.topic = infra.NewTopic(t, partitions, topicConfigs...)
	s.dlq = names.DeadLetterTopicFor(s.topic)
	infra.CreateTopic(t, s.dlq, 1)
	s.dsn = infra.NewDatabase(t)
	s.pool = newPool(t, s.dsn)
	return s
}

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// consumerProc is one `atlas consume audit` process.
type consumerProc struct {
	t      testing.TB
	name   string
	args   []string
	env    []string
	health string
	logs   string
	cmd    *exec.Cmd
	done   chan struct{}
}

// startConsumer starts `atlas consume audit` for the setup in the given group.
func (s *setup) startConsumer(t testing.TB, name, group string, extra ...string) *consumerProc {
	t.Helper()
	return s.startMode(t, "audit", name, group, extra...)
}

// startMode starts `atlas consume <mode>` for the setup in the given group.
func (s *setup) startMode(t testing.TB, mode, name, group string, extra ...string) *consumerProc {
	t.Helper()
	p := &consumerProc{
		t:    t,
		name: name,
		args: append([]string{"consume", mode,
			"--kafka-brokers", strings.Join(s.brokers, ","),
			"--topic", s.topic, "--group", group,
			"--migrate", "--batch-wait", "20ms", "--shutdown-timeout", "10s",
			// the broker's minimum: a SIGKILLed member's partitions move on after 6s, not 45s
			"--session-timeout", "6s"}, extra...),
		env:  append(os.Environ(), names.EnvPostgresDSN+"="+s.dsn),
		logs: filepath.Join(t.TempDir(), name+".log"),
	}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *consumerProc) start() {
	p.t.Helper()
	p.health = freeAddr(p.t)
	args := append(append([]string(nil), p.args...), "--health-addr", p.health)
	p.cmd = exec.Command(atlasBinary(p.t), args...)
	p.cmd.Env = p.env
	f, err := os.OpenFile(p.logs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}(p.cmd)
}

// restart starts the process again after it ended.
func (p *consumerProc) restart() { p.t.Helper(); p.start() }

// kill ends the process with SIGKILL, as an OOM kill or a node loss would.
func (p *consumerProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *consumerProc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit within 30s of SIGTERM; log:\n%s", p.name, p.tail())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("%s exited with %d after SIGTERM; log:\n%s", p.name, code, p.tail())
	}
}

func (p *consumerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process log.
func (p *consumerProc) tail() string {
	b, _ := os.ReadFile(p.logs)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// metric returns the value of a series on /metrics (the sum when several match).
func (p *consumerProc) metric(name string) (float64, error) { return p.metricWith(name, "") }

// metricWith returns the sum of the series of the metric whose labels contain labels
// (e.g. `dependency="postgres"`; "" matches all).
func (p *consumerProc) metricWith(name, labels string) (float64, error) {
	resp, err := http.Get("http://" + p.health + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if labels != "" && !strings.Contains(line, labels) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no series %s{%s}", name, labels)
	}
	return sum, nil
}

// ready returns the /readyz status code (0 when unreachable).
func (p *consumerProc) ready() int {
	code, _ := p.readyz()
	return code
}

// readyz returns the /readyz status code and answer (0 when unreachable).
func (p *consumerProc) readyz() (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.health + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// waitReady waits until /readyz answers 200.
func (p *consumerProc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.ready() == http.StatusOK {
			return
		}
		if p.exited() {
			p.t.Fatalf("%s exited; log:\n%s", p.name, p.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, why := p.readyz()
	p.t.Fatalf("%s: /readyz still %d (%s) after %s\n%s", p.name, code, why, timeout, p.tail())
}

// watchNotReadyBecause watches /readyz for d and returns its first 503 answer that
// mentions what ("" when there was none); the process must stay up meanwhile.
func (p *consumerProc) watchNotReadyBecause(d time.Duration, what string) string {
	p.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if code, why := p.readyz(); code == http.StatusServiceUnavailable && strings.Contains(why, what) {
			return why
		}
		if p.exited() {
			p.t.Fatalf("%s exited while a dependency was down; log:\n%s", p.name, p.tail())
		}
	}
	return ""
}

// killWhileWorking SIGKILLs the process at a random moment once it has consumed
// something, then restarts it; it returns false, killing nothing, when there is nothing
// left to consume (all is produced and the group has no lag).
func (p *consumerProc) killWhileWorking(rng *rand.Rand, produced <-chan struct{}, group, topic string) bool {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n, err := p.metric("atlas_consumer_records_consumed_total"); err == nil && n > 0 {
			break
		}
		select {
		case <-produced:
			if infra.GroupLag(p.t, group, topic) == 0 {
				return false
			}
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s consumed nothing within 2 minutes; log:\n%s", p.name, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Duration(50+rng.IntN(600)) * time.Millisecond)
	p.kill()
	p.restart()
	return true
}

// watchNotReady watches /readyz for d and reports whether it answered 503 at some
// point; the process must stay up meanwhile.
func (p *consumerProc) watchNotReady(d time.Duration) bool {
	p.t.Helper()
	saw := false
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if p.ready() == http.StatusServiceUnavailable {
			saw = true
		}
		if p.exited() {
			p.t.Fatalf("%s exited while a dependency was down; log:\n%s", p.name, p.tail())
		}
	}
	return saw
}

// waitMetric waits until the metric reaches at least want.
func (p *consumerProc) waitMetric(name string, want float64, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last float64
	var err error
	for time.Now().Before(deadline) {
		if p.exited() {
			p.t.Fatalf("%s exited; log:\n%s", p.name, p.tail())
		}
		if last, err = p.metric(name); err == nil && last >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: %s = %v (err %v), want %v within %s; log:\n%s", p.name, name, last, err, want, timeout, p.tail())
}

func kafkaAdmin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// generate returns n consistent synthetic envelopes.
func generate(t testing.TB, seed uint64, n int) []*event.Envelope {
	t.Helper()
	gen := eventgen.New(seed)
	out := make([]*event.Envelope, n)
	for i := range out {
		env, err := gen.Next()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = env
	}
	return out
}

// produceInSlices publishes envs in slices of size, pausing between slices, in the
// background; the channel closes when all are published.
func (s *setup) produceInSlices(t testing.TB, envs []*event.Envelope, size int, pause time.Duration) <-chan struct{} {
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < len(envs); i += size {
			s.produce(t, envs[i:min(i+size, len(envs))])
			time.Sleep(pause)
		}
	}()
	return produced
}

// produce publishes the envelopes to the topic on the shared broker and waits until all
// are acknowledged.
func (s *setup) produce(t testing.TB, envs []*event.Envelope) {
	t.Helper()
	s.produceWith(t, infra.KafkaClient(t, kgo.ProducerLinger(5*time.Millisecond)), envs)
}

// produceTo publishes to the setup's own brokers (a private broker).
func (s *setup) produceTo(t testing.TB, envs []*event.Envelope) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s.produceWith(t, cl, envs)
}

func (s *setup) produceWith(t testing.TB, cl *kgo.Client, envs []*event.Envelope) {
	t.Helper()
	recs := make([]*kgo.Record, len(envs))
	for i, env := range envs {
		r, err := event.Record(s.topic, env)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = r
	}
	s.produceRecords(t, cl, recs)
}

func (s *setup) produceRecords(t testing.TB, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var firstErr error
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if firstErr != nil {
		t.Fatalf("produce to %s: %v", s.topic, firstErr)
	}
}

// waitCaughtUp waits until the group has committed every record of the topic.
func (s *setup) waitCaughtUp(t testing.TB, group string, timeout time.Duration, procs ...*consumerProc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	lag := int64(-1)
	for time.Now().Before(deadline) {
		if lag = infra.GroupLag(t, group, s.topic); lag == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s still lags %d records after %s\n%s", group, lag, timeout, tails(procs))
}

// tails returns the end of each process's log, for a failure message.
func tails(procs []*consumerProc) string {
	var logs strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&logs, "--- %s:\n%s\n", p.name, p.tail())
	}
	return logs.String()
}

// rowCount counts audit_events rows (0 while the table does not exist yet).
func (s *setup) rowCount(t testing.TB) int {
	t.Helper()
	var n int
	err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events").Scan(&n)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return 0
		}
		t.Fatalf("count audit_events: %v", err)
	}
	return n
}

// waitRows waits until audit_events holds want rows.
func (s *setup) waitRows(t testing.TB, want int, timeout time.Duration, procs ...*consumerProc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	got := 0
	for time.Now().Before(deadline) {
		if got = s.rowCount(t); got >= want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("audit_events has %d rows, want %d within %s\n%s", got, want, timeout, tails(procs))
}

// assertExactly checks that audit_events holds exactly the envelopes' event ids, once each.
func (s *setup) assertExactly(t testing.TB, envs []*event.Envelope) {
	t.Helper()
	want := make(map[uuid.UUID]bool, len(envs))
	for _, e := range envs {
		want[e.EventID] = true
	}
	rows, err := s.pool.Query(context.Background(), "SELECT event_id FROM audit_events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := make(map[uuid.UUID]int, len(envs))
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing, extra, doubled := 0, 0, 0
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	for id, n := range seen {
		if !want[id] {
			extra++
		}
		if n > 1 {
			doubled++
		}
	}
	if missing+extra+doubled > 0 || len(seen) != len(want) {
		t.Fatalf("audit_events differs from the produced set: %d produced, %d distinct rows, %d missing, %d unexpected, %d doubled",
			len(want), len(seen), missing, extra, doubled)
	}
}
