package scaling_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/controllers/scaling"
	"github.com/atlas-platform/atlas-operator/internal/devkafka"
)

// TestLagOfAGroupNoOneJoined: some brokers answer OffsetFetch for a group no consumer
// has joined yet with GROUP_ID_NOT_FOUND (the embedded kfake broker of the local demo
// does; Apache Kafka answers with no offsets, see TestLagDrivenScalingOnRealBroker).
// Such a group has no commits: its lag follows the start position, it is not an error,
// or a consumer scaled to zero could never start.
func TestLagOfAGroupNoOneJoined(t *testing.T) {
	ctx := context.Background()
	b, err := devkafka.Start(devkafka.Config{Port: 0, Partitions: 3, Topics: []string{"events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Value: []byte("x"), Partition: int32(i % 3)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.FetchOffsetsForTopics(ctx, "nobody-joined", "events"); err == nil {
		t.Log("this broker answers OffsetFetch for an unknown group without an error")
	} else {
		t.Logf("this broker answers OffsetFetch for an unknown group with: %v", err)
	}
	lag, err := scaling.ReadLag(ctx, adm, "nobody-joined", "events", true)
	if err != nil {
		t.Fatalf("lag of a group nobody joined: %v", err)
	}
	if lag.Total != 30 || len(lag.Partitions) != 3 {
		t.Fatalf("lag %d over %d partitions, want 30 over 3 (everything, from the earliest offset)", lag.Total, len(lag.Partitions))
	}
	if lag, err = scaling.ReadLag(ctx, adm, "nobody-joined", "events", false); err != nil || lag.Total != 0 {
		t.Fatalf("starting at the latest offset: lag %d, %v; want 0", lag.Total, err)
	}
}
