package flagenv

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestApply(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	brokers := fs.StringSlice("kafka-brokers", []string{"default:9092"}, "")
	topic := fs.String("topic", "a", "")
	batch := fs.Int("batch-size", 10, "")
	t.Setenv("ATLAS_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("ATLAS_TOPIC", "from-env")
	t.Setenv("ATLAS_BATCH_SIZE", "not-a-number")
	if err := fs.Parse([]string{"--topic", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	err := Apply(fs)
	if err == nil || err.Error() == "" {
		t.Fatalf("expected an error for ATLAS_BATCH_SIZE, got %v", err)
	}
	if len(*brokers) != 2 || (*brokers)[1] != "k2:9092" {
		t.Fatalf("brokers = %v", *brokers)
	}
	if *topic != "from-flag" {
		t.Fatalf("explicit flag lost to the environment: %s", *topic)
	}
	if *batch != 10 {
		t.Fatalf("batch = %d", *batch)
	}
	if Name("kafka-brokers") != "ATLAS_KAFKA_BROKERS" {
		t.Fatal(Name("kafka-brokers"))
	}
}
