package smoke

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// TestKafkaIsReal: the broker is Apache Kafka 4.x (its ApiVersions answer carries the
// KRaft feature levels only a real broker reports), and a record produced to it is
// consumed by a consumer group that commits its offset.
func TestKafkaIsReal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cl := infra.KafkaClient(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName = "atlas-smoke"
	req.ClientSoftwareVersion = "1"
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions error code %d", resp.ErrorCode)
	}
	versions := kversion.FromApiVersionsResponse(resp)
	guess := versions.VersionGuess()
	features := map[string]int16{}
	for _, f := range resp.FinalizedFeatures {
		features[f.Name] = f.MaxVersionLevel
	}
	t.Logf("kafka: broker at %v answers ApiVersions like Apache Kafka %s; finalized features %v", infra.KafkaBrokers(t), guess, features)
	if !strings.Contains(guess, "v4.") || strings.HasPrefix(guess, "not even") {
		t.Fatalf("broker version guess %q, want Apache Kafka 4.x", guess)
	}
	if features["metadata.version"] == 0 {
		t.Fatalf("no finalized metadata.version feature: not a KRaft Apache Kafka broker (features %v)", features)
	}

	topic := infra.NewTopic(t, 3)
	group := infra.NewGroup(t)
	producer := infra.KafkaClient(t, kgo.DefaultProduceTopic(topic))
	if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("hello atlas")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	consumer := infra.KafkaClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	var got *kgo.Record
	for got == nil {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("timed out waiting for the record")
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = r })
	}
	if string(got.Value) != "hello atlas" {
		t.Fatalf("consumed %q", got.Value)
	}
	if err := consumer.CommitRecords(ctx, got); err != nil {
		t.Fatalf("commit: %v", err)
	}

	adm := kadm.NewClient(infra.KafkaClient(t))
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	o, ok := offsets.Lookup(topic, got.Partition)
	if !ok || o.At != got.Offset+1 {
		t.Fatalf("committed offset for %s/%d = %+v (found %v), want %d", topic, got.Partition, o, ok, got.Offset+1)
	}
	t.Logf("kafka: group %s consumed %s/%d@%d and committed offset %d", group, topic, got.Partition, got.Offset, o.At)
}
