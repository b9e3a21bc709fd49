package kafkaconn

import (
	"context"
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

func TestValidateSASLMechanisms(t *testing.T) {
	base := func(mech string, edit func(*Config)) Config {
		c := Config{Brokers: []string{"k:9092"}, SASLMechanism: mech}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" when valid
	}{
		{"OAUTHBEARER token file", base("OAUTHBEARER", func(c *Config) { c.OAuth.TokenFile = "/t" }), ""},
		{"OAUTHBEARER client credentials", base("OAUTHBEARER", func(c *Config) {
			c.OAuth = OAuth{TokenURL: "https://idp/token", ClientID: "id", ClientSecret: "s", Scopes: []string{"kafka"}}
		}), ""},
		{"OAUTHBEARER without a source", base("OAUTHBEARER", nil), "needs --kafka-sasl-oauth-token-file, or --kafka-sasl-oauth-token-url"},
		{"OAUTHBEARER with both", base("OAUTHBEARER", func(c *Config) {
			c.OAuth = OAuth{TokenFile: "/t", TokenURL: "https://idp/token", ClientID: "id", ClientSecret: "s"}
		}), "not both"},
		{"OAUTHBEARER grant without secret", base("OAUTHBEARER", func(c *Config) { c.OAuth = OAuth{TokenURL: "https://idp/token", ClientID: "id"} }),
			"needs --kafka-sasl-oauth-token-url, --kafka-sasl-oauth-client-id and a client secret"},
		{"OAUTHBEARER with a password", base("OAUTHBEARER", func(c *Config) { c.OAuth.TokenFile = "/t"; c.SASLPassword = "p" }), "does not use a user name or password"},
		{"AWS_MSK_IAM", base("AWS_MSK_IAM", nil), ""},
		{"AWS_MSK_IAM with a user", base("AWS_MSK_IAM", func(c *Config) { c.SASLUsername = "u" }), "takes its credentials from the AWS environment"},
		{"OAuth without a mechanism", base("", func(c *Config) { c.OAuth.TokenFile = "/t" }), "SASL credentials given without --kafka-sasl-mechanism"},
		{"unknown", base("GSSAPI", nil), "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestAWSCredentialsFromTheDefaultChain: AWS_MSK_IAM signs with what the AWS SDK's default
// chain finds, here the standard environment variables.
func TestAWSCredentialsFromTheDefaultChain(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "session")
	got, err := awsCredentials()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessKey != "AKIDEXAMPLE" || got.SecretKey != "secret" || got.SessionToken != "session" {
		t.Fatalf("credentials = %+v", got)
	}
	c := Config{Brokers: []string{"b-1.demo.kafka.eu-west-1.amazonaws.com:9098"}, SASLMechanism: SASLAWSMSKIAM, TLS: true}
	if _, err := c.Opts(); err != nil {
		t.Fatal(err)
	}
}
