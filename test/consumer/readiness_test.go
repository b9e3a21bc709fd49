package consumer_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// /readyz tells the truth about what the consumer needs: a topic or a dead-letter topic
// that does not exist is named (503, atlas_consumer_topic_missing{topic} = 1, a warning
// in the log) until it is created; a Postgres host that does not resolve is named as
// postgres while the consumer starts.
func TestReadinessNamesWhatIsMissing(t *testing.T) {
	t.Parallel()

	t.Run("topic", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, 1)
		s.topic = strings.ReplaceAll(infra.UniqueName(t, "absent", 100), "_", ".")
		s.dlq = names.DeadLetterTopicFor(s.topic)
		infra.CreateTopic(t, s.dlq, 1)
		c := s.startConsumer(t, "audit", infra.NewGroup(t))
		why := c.watchNotReadyBecause(30*time.Second, "topic "+s.topic+" unavailable")
		if why == "" {
			t.Fatalf("/readyz never named the missing topic %s\n%s", s.topic, c.tail())
		}
		t.Logf("/readyz: %s", why)
		if v, err := c.metricWith("atlas_consumer_topic_missing", `topic="`+s.topic+`"`); v != 1 {
			t.Fatalf("atlas_consumer_topic_missing{topic=%q} = %v (%v), want 1", s.topic, v, err)
		}
		if log := c.tail(); !strings.Contains(log, `"level":"WARN","msg":"a topic the consumer needs does not exist"`) {
			t.Fatalf("no warning about the missing topic in the log:\n%s", log)
		}
		infra.CreateTopic(t, s.topic, 1)
		c.waitReady(30 * time.Second)
		if v, _ := c.metricWith("atlas_consumer_topic_missing", `topic="`+s.topic+`"`); v != 0 {
			t.Fatalf("atlas_consumer_topic_missing = %v after the topic was created, want 0", v)
		}
		s.produce(t, generate(t, 81, 50))
		s.waitRows(t, 50, time.Minute, c)
		c.stop()
	})

	t.Run("dead-letter topic", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, 1)
		dlq := s.topic + ".absent.dlq"
		c := s.startConsumer(t, "audit", infra.NewGroup(t), "--dead-letter-topic", dlq)
		why := c.watchNotReadyBecause(30*time.Second, "dead-letter topic "+dlq+" unavailable")
		if why == "" {
			t.Fatalf("/readyz never named the missing dead-letter topic %s\n%s", dlq, c.tail())
		}
		t.Logf("/readyz: %s", why)
		c.stop()
	})

	t.Run("postgres host", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, 1)
		c := s.startConsumer(t, "audit", infra.NewGroup(t))
		c.kill()
		c.env = append(os.Environ(), names.EnvPostgresDSN+"=postgres://atlas@no-such-host.invalid:5432/atlas?connect_timeout=2")
		c.restart()
		why := c.watchNotReadyBecause(30*time.Second, "postgres unavailable")
		if why == "" {
			code, body := c.readyz()
			t.Fatalf("/readyz never named postgres for an unresolvable host (last answer %d %q)\n%s", code, body, c.tail())
		}
		t.Logf("/readyz: %s", why)
	})
}
