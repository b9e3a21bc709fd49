package infra

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
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
// deletes it when the test ends. Topic configs (e.g. "max.message.bytes") are optional.
func NewTopic(t testing.TB, partitions int32, configs ...string) string {
	t.Helper()
	name := strings.ReplaceAll(UniqueName(t, "t", 200), "_", ".")
	CreateTopic(t, name, partitions, configs...)
	return name
}

// CreateTopic creates the named topic with the given partitions and "key", "value"
// config pairs, and deletes it when the test ends.
func CreateTopic(t testing.TB, name string, partitions int32, configs ...string) {
	t.Helper()
	if len(configs)%2 != 0 {
		t.Fatalf("CreateTopic %s: configs must be key, value pairs", name)
	}
	cfg := map[string]*string{}
	for i := 0; i < len(configs); i += 2 {
		cfg[configs[i]] = &configs[i+1]
	}
	adm := kadm.NewClient(KafkaClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, cfg, name)
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
}

// NewGroup returns a consumer group id unique to the calling test.
func NewGroup(t testing.TB) string {
	t.Helper()
	return UniqueName(t, "g", 200)
}

// Published returns the number of records on the topic: the sum of its partitions' end
// offsets.
func Published(t testing.TB, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(KafkaClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// GroupLag returns the group's lag on the topic: records past its committed offsets
// (all of a partition's records where it committed none).
func GroupLag(t testing.TB, group, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(KafkaClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok || c.At < 0 {
			lag += o.Offset
			return
		}
		lag += o.Offset - c.At
	})
	return lag
}

// OAuthScope is the scope the OAUTHBEARER broker of hack/kafka.sh (ATLAS_KAFKA_SASL=OAUTHBEARER)
// demands in every token.
const OAuthScope = "atlas.events"

// UnsecuredJWT returns an unsigned JWT ("alg": "none") for subject sub with the given scope,
// issued now and expiring after ttl: what Kafka's unsecured-JWT validator accepts.
func UnsecuredJWT(sub, scope string, ttl time.Duration) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now()
	return enc(map[string]string{"alg": "none"}) + "." +
		enc(map[string]any{"sub": sub, "scope": scope, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}) + "."
}

// OAuthKafkaClient is a franz-go client of an OAUTHBEARER broker (StartKafka with
// ATLAS_KAFKA_SASL=OAUTHBEARER) presenting token, configured as the consumers configure
// theirs (kafkaconn); it is closed when the test ends.
func OAuthKafkaClient(t testing.TB, brokers []string, token string) *kgo.Client {
	t.Helper()
	c := kafkaconn.Config{Brokers: brokers, SASLMechanism: kafkaconn.SASLOAuthBearer, OAuth: kafkaconn.OAuth{Token: token}}
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopicsWith creates the topics with the given partition count through cl (a
// client of a test's own broker), failing the test on any error.
func CreateTopicsWith(t testing.TB, cl *kgo.Client, partitions int32, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
}
