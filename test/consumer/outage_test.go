package consumer_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Issue test 6: Postgres stops for more than 10 seconds mid-run. The consumer retries,
// reports not ready, commits nothing past unprocessed work, and resumes by itself.
func TestAuditSurvivesPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := infra.StartPostgres(t)
	s := newSetup(t, 3)
	// Use the private server instead of the shared one.
	s.dsn = pg.Addr
	s.pool = newPool(t, s.dsn)

	envs := generate(t, 6, 20_000)
	produced := s.produceInSlices(t, envs, 1_000, 400*time.Millisecond)
	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, 3_000, time.Minute, c)
	if code := c.ready(); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the outage, want 200", code)
	}

	s.pool.Reset()
	pg.Stop()
	outage := time.Now()
	t.Log("postgres stopped")
	sawNotReady := c.watchNotReady(12*time.Second - time.Since(outage))
	retries, _ := c.metric(`atlas_consumer_retries_total{consumer="audit",dependency="postgres"}`)
	pg.Start()
	t.Logf("postgres started again after %s; %v postgres retries so far", time.Since(outage).Round(time.Second), retries)
	if !sawNotReady {
		t.Errorf("/readyz never reported 503 during the outage")
	}
	if retries == 0 {
		t.Errorf("no postgres retries were counted during the outage")
	}

	<-produced
	s.waitRows(t, len(envs), 2*time.Minute, c)
	s.assertExactly(t, envs)
	deadline := time.Now().Add(30 * time.Second)
	for c.ready() != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if code := c.ready(); code != http.StatusOK {
		t.Errorf("/readyz = %d after recovery, want 200", code)
	}
	c.stop()
}

// The broker stops for more than 10 seconds mid-run: the consumer reports not ready,
// loses nothing, and resumes by itself when the broker is back.
func TestAuditSurvivesKafkaOutage(t *testing.T) {
	t.Parallel()
	broker := infra.StartKafka(t)
	s := &setup{brokers: []string{broker.Addr}, dsn: infra.NewDatabase(t)}
	s.pool = newPool(t, s.dsn)
	admin := kafkaAdmin(t, s.brokers)
	s.topic = "audit.outage"
	s.dlq = s.topic + ".dlq"
	for _, topic := range []string{s.topic, s.dlq} {
		if _, err := admin.CreateTopic(context.Background(), 3, 1, nil, topic); err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}
	first, second := generate(t, 11, 5_000), generate(t, 12, 5_000)
	s.produceTo(t, first)
	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, len(first), time.Minute, c)

	broker.Stop()
	outage := time.Now()
	t.Log("broker stopped")
	sawNotReady := c.watchNotReady(12*time.Second - time.Since(outage))
	broker.Start()
	t.Logf("broker started again after %s", time.Since(outage).Round(time.Second))
	if !sawNotReady {
		t.Errorf("/readyz never reported 503 while the broker was down")
	}
	s.produceTo(t, second)
	all := append(append([]*event.Envelope(nil), first...), second...)
	s.waitRows(t, len(all), 2*time.Minute, c)
	s.assertExactly(t, all)
	c.stop()
}

// Postgres crashes three times mid-run (an immediate stop: no checkpoint, its WAL
// buffers lost) while its default is synchronous_commit = off (the test stack's setting,
// and a common tuning, under which a commit returns before it is written): every event is
// still audited exactly once, because the consumer makes its own commits durable before
// it commits their offsets.
func TestAuditIsDurableAcrossPostgresCrashes(t *testing.T) {
	t.Parallel()
	pg := infra.StartPostgres(t)
	s := newSetup(t, 6)
	s.dsn = pg.Addr
	s.pool = newPool(t, s.dsn)
	var setting string
	if err := s.pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&setting); err != nil || setting != "off" {
		t.Fatalf("the private server's synchronous_commit is %q (%v), want off for this test", setting, err)
	}
	envs := generate(t, 62, 150_000)
	produced := s.produceInSlices(t, envs, 5_000, 150*time.Millisecond)
	group := infra.NewGroup(t)
	c := s.startConsumer(t, "audit", group)
	for crash := 1; crash <= 3; crash++ {
		s.waitRows(t, crash*30_000, 2*time.Minute, c)
		s.pool.Reset()
		pg.Crash()
		t.Logf("crash %d", crash)
		time.Sleep(time.Second)
		pg.Start()
	}
	<-produced
	s.waitCaughtUp(t, group, 3*time.Minute, c)
	s.assertExactly(t, envs)
	c.stop()
}
