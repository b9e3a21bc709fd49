package kafkaconn

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Config{Brokers: []string{"nohostport"}, TLSCertFile: "c.pem", SASLMechanism: "GSSAPI"}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{`"nohostport" is not host:port`, "--kafka-tls-cert-file and --kafka-tls-key-file go together", `"GSSAPI"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	c = Config{Brokers: []string{"k:9092"}, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "needs --kafka-sasl-username and a password") {
		t.Fatalf("SCRAM without password: %v", err)
	}
}

func TestOpts(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	var c Config
	c.AddFlags(fs, "atlas-test")
	if err := fs.Parse([]string{"--kafka-brokers=a:1,b:2", "--kafka-sasl-mechanism=SCRAM-SHA-256", "--kafka-sasl-username=u", "--kafka-sasl-password=p"}); err != nil {
		t.Fatal(err)
	}
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 3 { // brokers, client id, SASL
		t.Fatalf("got %d options", len(opts))
	}
	c.TLSCAFile = "/does/not/exist.pem"
	if _, err := c.Opts(); err == nil || !strings.Contains(err.Error(), "read Kafka CA file") {
		t.Fatalf("missing CA file: %v", err)
	}
}
