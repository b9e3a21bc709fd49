package infra

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaBrokers returns the bootstrap servers of the test broker.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	v := Require(t, EnvKafkaBrokers, "Kafka broker",
		"start a real one with `hack/kafka.sh start DIR` (Apache Kafka from Maven Central, needs Java 17 and mvn) and export "+EnvKafkaBrokers+"=<host:port>")
	return strings.Split(v, ",")
}

// KafkaClient returns a franz-go client for the test broker with extra options; it is
// closed when the test ends.
func KafkaClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(KafkaBrokers(t)...)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// NewTopic creates a topic unique to the calling test with the given partitions and
// deletes it when the test ends.
func NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	adm := kadm.NewClient(KafkaClient(t))
	name := strings.ReplaceAll(UniqueName(t, "t", 200), "_", ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s on %v: %v", name, KafkaBrokers(t), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, name); err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
	return name
}

// NewGroup returns a consumer group id unique to the calling test.
func NewGroup(t testing.TB) string {
	t.Helper()
	return UniqueName(t, "g", 200)
}
