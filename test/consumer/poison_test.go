package consumer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/audit"
	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// mutate returns env's JSON with fn applied to it as a map.
func mutate(t *testing.T, env *event.Envelope, fn func(map[string]any)) []byte {
	t.Helper()
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Issue test 5: poison records mixed into valid traffic each land in the dead-letter
// topic with their reason and source coordinates; every valid event is audited,
// including an unknown event type and a newer version.
func TestAuditDeadLettersPoisonRecords(t *testing.T) {
	t.Parallel()
	// The source topic takes the 2 MB record; the dead-letter topic keeps the broker's
	// default (1 MB), so that dead letter must arrive without its value.
	s := newSetup(t, 3, "max.message.bytes", strconv.Itoa(4<<20))
	valid := generate(t, 5, 1_000)
	base := valid[0]

	unknownType, err := event.New("ReportExported", event.Entity{Type: "Report", ID: uuid.New()}, map[string]any{"format": "pdf"})
	if err != nil {
		t.Fatal(err)
	}
	collection := uuid.New()
	newer, err := event.New(event.ItemCreated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &collection}, map[string]any{"title": "from the future"})
	if err != nil {
		t.Fatal(err)
	}
	newer.Version = 2

	type poison struct {
		name, kind, reason string
		value              []byte
	}
	poisons := []poison{
		{"truncated JSON", runner.KindNotJSON, "not JSON", []byte(`{"event_id": "` + uuid.NewString())},
		{"plain text", runner.KindNotJSON, "not JSON", []byte("hello, audit")},
		{"bad UUID", runner.KindInvalidEnvelope, "entity.id: not a UUID", mutate(t, base, func(m map[string]any) {
			m["event_id"] = uuid.NewString()
			m["entity"].(map[string]any)["id"] = "item-uuid"
		})},
		{"missing fields", runner.KindInvalidEnvelope, "occurred_at", []byte(`{"event_id":"` + uuid.NewString() + `","event_type":"ItemCreated"}`)},
		{"wrong types", runner.KindInvalidEnvelope, "version", mutate(t, base, func(m map[string]any) {
			m["event_id"] = uuid.NewString()
			m["version"] = "1"
			m["data"] = []any{1, 2}
		})},
		{"2 MB value", runner.KindTooLarge, "exceeds the 1048576-byte limit", mutate(t, base, func(m map[string]any) {
			m["event_id"] = uuid.NewString()
			// incompressible, so no compression codec squeezes it under the dead-letter topic's limit
			noise := make([]byte, 3<<19)
			rng := rand.New(rand.NewPCG(5, 5))
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			m["data"] = map[string]any{"content": base64.StdEncoding.EncodeToString(noise)}
		})},
		{"NUL escape Postgres refuses", audit.KindUnstorable, "postgres refused the event", bytes.Replace(
			mutate(t, base, func(m map[string]any) {
				m["event_id"] = uuid.NewString()
				m["data"] = map[string]any{"title": "NULHERE"}
			}), []byte("NULHERE"), []byte(`nul\u0000byte`), 1)},
	}

	cl := infra.KafkaClient(t, kgo.ProducerBatchMaxBytes(8<<20))
	var recs []*kgo.Record
	poisonAt := map[int]int{} // index in recs -> index in poisons
	for i, env := range valid {
		r, err := event.Record(s.topic, env)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		if i%150 == 75 && len(poisonAt) < len(poisons) {
			p := len(poisonAt)
			poisonAt[len(recs)] = p
			recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte("poison-" + strconv.Itoa(p)), Value: poisons[p].value,
				Headers: []kgo.RecordHeader{{Key: "x-test-case", Value: []byte(poisons[p].name)}}})
		}
	}
	for _, env := range []*event.Envelope{unknownType, newer} {
		r, err := event.Record(s.topic, env)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(poisonAt) != len(poisons) {
		t.Fatalf("only %d poison records placed", len(poisonAt))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results := cl.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	offsets := map[string]*kgo.Record{} // key -> produced poison record (with its partition and offset)
	for _, res := range results {
		if bytes.HasPrefix(res.Record.Key, []byte("poison-")) {
			offsets[string(res.Record.Key)] = res.Record
		}
	}

	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	wantAudited := append(append([]*event.Envelope(nil), valid...), unknownType, newer)
	s.waitRows(t, len(wantAudited), 2*time.Minute, c)
	c.waitMetric("atlas_consumer_dead_lettered_total", float64(len(poisons)), time.Minute)
	s.assertExactly(t, wantAudited)

	letters := readTopic(t, s.dlq, len(poisons), time.Minute)
	for _, dl := range letters {
		h := headers(dl)
		src := offsets[string(dl.Key)]
		if src == nil {
			t.Errorf("dead letter with unexpected key %q", dl.Key)
			continue
		}
		var p poison
		for _, cand := range poisons {
			if cand.name == h["x-test-case"] {
				p = cand
			}
		}
		if p.name == "" {
			t.Errorf("dead letter %q lost the original x-test-case header: %v", dl.Key, h)
			continue
		}
		if h[runner.HeaderErrorKind] != p.kind || !strings.Contains(h[runner.HeaderError], p.reason) {
			t.Errorf("%s: kind %q reason %q, want kind %q and a reason mentioning %q", p.name, h[runner.HeaderErrorKind], h[runner.HeaderError], p.kind, p.reason)
		}
		if h[runner.HeaderSourceTopic] != s.topic || h[runner.HeaderSourcePartition] != strconv.Itoa(int(src.Partition)) ||
			h[runner.HeaderSourceOffset] != strconv.FormatInt(src.Offset, 10) || h[runner.HeaderConsumerGroup] == "" {
			t.Errorf("%s: source headers %v, want %s/%d@%d", p.name, h, s.topic, src.Partition, src.Offset)
		}
		if p.kind == runner.KindTooLarge {
			if len(dl.Value) != 0 || h[runner.HeaderValueDropped] != strconv.Itoa(len(p.value)) {
				t.Errorf("%s: a value of %d bytes and dropped header %q, want the value left out and its size noted", p.name, len(dl.Value), h[runner.HeaderValueDropped])
			}
		} else if !bytes.Equal(dl.Value, p.value) {
			t.Errorf("%s: the dead letter's value differs from the original", p.name)
		}
		t.Logf("dead letter %-28s kind=%-16s reason=%.90s", p.name, h[runner.HeaderErrorKind], h[runner.HeaderError])
	}
	c.stop()
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// readTopic reads want records from the start of topic.
func readTopic(t *testing.T, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := infra.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s within %s", len(out), want, topic, timeout)
		}
		out = append(out, fetches.Records()...)
	}
	if len(out) != want {
		t.Fatalf("%s holds %d records, want %d", topic, len(out), want)
	}
	return out
}

// The dead-letter topic is unavailable (it does not exist yet; the test broker does not
// create topics on demand): the consumer retries,
// reports not ready and commits nothing past the poison record; once the topic exists
// the record is dead-lettered and consumption goes on, without a restart.
func TestAuditWaitsForTheDeadLetterTopic(t *testing.T) {
	t.Parallel()
	s := &setup{brokers: infra.KafkaBrokers(t)}
	s.topic = infra.NewTopic(t, 1)
	s.dlq = s.topic + ".dlq" // not created yet
	s.dsn = infra.NewDatabase(t)
	s.pool = newPool(t, s.dsn)

	before := generate(t, 9, 100)
	s.produce(t, before)
	cl := infra.KafkaClient(t)
	s.produceRecords(t, cl, []*kgo.Record{{Topic: s.topic, Value: []byte("not an envelope")}})
	after := generate(t, 10, 100)
	s.produce(t, after)

	group := infra.NewGroup(t)
	c := s.startConsumer(t, "audit", group)
	c.waitMetric(`atlas_consumer_retries_total{consumer="audit",dependency="dead-letter"}`, 2, time.Minute)
	if code := c.ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d while the dead-letter topic is missing, want 503", code)
	}
	// Nothing of the poison record's batch may be committed yet.
	if lag := infra.GroupLag(t, group, s.topic); lag < 1 {
		t.Fatalf("group lag %d: an offset moved past the record that could not be dead-lettered", lag)
	}
	infra.CreateTopic(t, s.dlq, 1)
	s.waitRows(t, len(before)+len(after), time.Minute, c)
	c.waitMetric("atlas_consumer_dead_lettered_total", 1, time.Minute)
	s.assertExactly(t, append(append([]*event.Envelope(nil), before...), after...))
	readTopic(t, s.dlq, 1, 30*time.Second)
	c.stop()
	if lag := infra.GroupLag(t, group, s.topic); lag != 0 {
		t.Fatalf("group lag %d after recovery and a clean stop, want 0", lag)
	}
}
