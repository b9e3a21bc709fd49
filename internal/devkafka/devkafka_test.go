package devkafka

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbeddedBroker: the embedded broker seeds its topics with the asked partitions and
// round-trips a record through a consumer group with a committed offset.
func TestEmbeddedBroker(t *testing.T) {
	b, err := Start(Config{Port: 0, Partitions: 3, Topics: []string{"events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("events"),
		kgo.ConsumeTopics("events"), kgo.ConsumerGroup("g"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details["events"].Partitions); got != 3 {
		t.Fatalf("events has %d partitions, want 3", got)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var rec *kgo.Record
	for rec == nil {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record")
		}
		f.EachRecord(func(r *kgo.Record) { rec = r })
	}
	if err := cl.CommitRecords(ctx, rec); err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("events", rec.Partition); !ok || o.At != rec.Offset+1 {
		t.Fatalf("committed %+v", o)
	}
}

// TestEmbeddedBrokerOnAnotherHost: with Host the broker listens on and advertises that
// address (here another loopback address), so clients that cannot reach 127.0.0.1, the
// local node's pods, can use it; nothing listens on 127.0.0.1 for it.
func TestEmbeddedBrokerOnAnotherHost(t *testing.T) {
	b, err := Start(Config{Host: "127.0.0.2", Port: 0, Partitions: 1, Topics: []string{"events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addrs := b.Addrs()
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil || host != "127.0.0.2" {
		t.Fatalf("listening on %v (%v), want 127.0.0.2", addrs, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("something answers on 127.0.0.1:%s too", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	meta, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].Host != "127.0.0.2" {
		t.Fatalf("advertised brokers %+v, want 127.0.0.2", meta.Brokers)
	}
}
