// Package contract tests the v1 event contract end to end against a real Apache Kafka broker.
package contract

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestPublisherOnRealKafka publishes generated events to a real broker and reads them
// back: every record decodes to what was sent, carries the filtering headers, and all
// events of one collection landed in one partition, in publish order.
func TestPublisherOnRealKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := infra.NewTopic(t, 4)
	pub := event.NewPublisher(infra.KafkaClient(t), topic)

	gen := eventgen.New(7)
	const n = 500
	sent := make(map[string]*event.Envelope, n)
	order := make([]string, 0, n)
	batch := make([]*event.Envelope, 0, n)
	for range n {
		env, err := gen.Next()
		if err != nil {
			t.Fatal(err)
		}
		sent[env.EventID.String()] = env
		order = append(order, env.EventID.String())
		batch = append(batch, env)
	}
	if err := pub.Publish(ctx, batch...); err != nil {
		t.Fatalf("publish: %v", err)
	}

	consumer := infra.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	partitionOfKey := map[string]int32{}
	position := map[string]int{}
	for i, id := range order {
		position[id] = i
	}
	lastPosByKey := map[string]int{}
	got := 0
	for got < n {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %d of %d records", got, n)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs)
		}
		for _, r := range fetches.Records() {
			got++
			env, err := event.Decode(r.Value)
			if err != nil {
				t.Fatalf("record at %d/%d does not decode: %v", r.Partition, r.Offset, err)
			}
			want, ok := sent[env.EventID.String()]
			if !ok {
				t.Fatalf("unexpected event %s", env.EventID)
			}
			if string(r.Key) != want.PartitionKey() {
				t.Fatalf("key %s, want %s", r.Key, want.PartitionKey())
			}
			if string(event.Header(r, event.HeaderEventType)) != string(want.EventType) ||
				string(event.Header(r, event.HeaderEventVersion)) != "1" ||
				string(event.Header(r, event.HeaderTraceID)) != want.Trace() {
				t.Fatalf("headers %v for %+v", r.Headers, want)
			}
			key := string(r.Key)
			if p, seen := partitionOfKey[key]; seen && p != r.Partition {
				t.Fatalf("key %s in partitions %d and %d", key, p, r.Partition)
			}
			partitionOfKey[key] = r.Partition
			pos := position[env.EventID.String()]
			if last, seen := lastPosByKey[key]; seen && pos < last {
				t.Fatalf("events of key %s out of publish order", key)
			}
			lastPosByKey[key] = pos
		}
	}
	if len(partitionOfKey) < 2 {
		t.Fatalf("only %d keys: the generator should spread events over collections", len(partitionOfKey))
	}
}
