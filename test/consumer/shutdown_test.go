package consumer_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// SIGTERM ends a consumer within --shutdown-timeout in every state, so within the pod's
// grace period (which the operator sets above it): idle, in the middle of a batch it
// cannot finish (its database is down), and while it waits in a group join (a member
// SIGKILLed before it still holds the group until its 45 s session times out).
func TestConsumerStopsWithinItsShutdownTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 4 * time.Second
	// The exit may come a little after the timeout: the process still has to leave.
	const slack = 3 * time.Second
	stopIn := func(t *testing.T, p *consumerProc) time.Duration {
		t.Helper()
		start := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			t.Fatalf("%s did not exit within a minute of SIGTERM\n%s", p.name, p.tail())
		}
		took := time.Since(start)
		if took > timeout+slack {
			t.Errorf("%s exited %s after SIGTERM, want within its --shutdown-timeout %s (+%s)\n%s", p.name, took.Round(100*time.Millisecond), timeout, slack, p.tail())
		}
		return took
	}
	args := []string{"--shutdown-timeout", timeout.String(), "--session-timeout", "45s"}

	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, 3)
		c := s.startConsumer(t, "idle", infra.NewGroup(t), args...)
		s.produce(t, generate(t, 71, 100))
		s.waitRows(t, 100, time.Minute, c)
		t.Logf("idle: exited %s after SIGTERM", stopIn(t, c).Round(100*time.Millisecond))
	})

	t.Run("mid-batch", func(t *testing.T) {
		t.Parallel()
		pg := infra.StartPostgres(t)
		s := newSetup(t, 3)
		s.dsn = pg.Addr
		s.pool = newPool(t, s.dsn)
		c := s.startConsumer(t, "mid-batch", infra.NewGroup(t), args...)
		s.produce(t, generate(t, 72, 100))
		s.waitRows(t, 100, time.Minute, c)
		s.pool.Reset()
		pg.Stop()
		s.produce(t, generate(t, 73, 100))
		c.waitMetric("atlas_consumer_retries_total", 1, time.Minute) // the batch cannot be written
		t.Logf("mid-batch: exited %s after SIGTERM", stopIn(t, c).Round(100*time.Millisecond))
	})

	t.Run("joining", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, 3)
		group := infra.NewGroup(t)
		first := s.startConsumer(t, "first", group, args...)
		s.produce(t, generate(t, 74, 100))
		s.waitRows(t, 100, time.Minute, first)
		first.kill()
		c := s.startConsumer(t, "joining", group, args...)
		time.Sleep(5 * time.Second) // it is waiting for the group to let it in
		t.Logf("joining: exited %s after SIGTERM", stopIn(t, c).Round(100*time.Millisecond))
	})
}

// A group that starts at the latest offset takes its position when it first joins, so
// records published while no member runs (scaled to zero, or all pods restarting) are
// read when one comes back instead of being skipped by a reset to the end.
func TestLatestGroupKeepsItsPositionWhileNoMemberRuns(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 3)
	s.produce(t, generate(t, 91, 30)) // before the group exists: not its business
	group := infra.NewGroup(t)
	c := s.startConsumer(t, "audit", group, "--start-offset", "latest")
	s.waitCaughtUp(t, group, time.Minute, c) // the group has a commit on every partition
	c.stop()
	later := generate(t, 92, 200)
	s.produce(t, later)
	c.restart()
	s.waitCaughtUp(t, group, time.Minute, c)
	s.assertExactly(t, later)
	c.stop()
}
