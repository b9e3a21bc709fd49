// Package kafkaconn holds the settings every atlas Kafka client shares (brokers, client
// id, TLS, SASL), their command-line flags, and the franz-go options they become. The
// flag names are exported so the operator builds consumer pods from the same names the
// binary reads (see internal/flagenv for the ATLAS_* environment fallbacks).
package kafkaconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/tlsconfig"
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	// SASLOAuthBearer authenticates with an OAuth 2.0 bearer token (a JWT), read from a
	// file or obtained with the client credentials grant.
	SASLOAuthBearer = "OAUTHBEARER"
	// SASLAWSMSKIAM authenticates to Amazon MSK with the AWS credentials of the process,
	// found by the AWS SDK's default chain (environment, web identity / IRSA, EKS Pod
	// Identity, instance role).
	SASLAWSMSKIAM = "AWS_MSK_IAM"
)

// saslMechanisms lists the mechanisms, as errors name them.
const saslMechanisms = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM"

// Config is how to reach and authenticate to the Kafka cluster.
type Config struct {
	Brokers  []string
	ClientID string

	// TLS is enabled when TLS is set or any TLS file is given; without a CA file the
	// system roots verify the brokers.
	TLS         bool
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	// TLSCAPEM, TLSCertPEM and TLSKeyPEM are the same in memory (the operator reads them
	// from Secrets); they win over the files.
	TLSCAPEM   []byte
	TLSCertPEM []byte
	TLSKeyPEM  []byte

	SASLMechanism string
	SASLUsername  string
	SASLPassword  string

	// OAuth configures OAUTHBEARER.
	OAuth OAuth
}

// OAuth is where OAUTHBEARER tokens come from: a token (TokenFile, re-read at every
// authentication so a rotated token is used without a restart; or Token in memory), or the
// client credentials grant at TokenURL (tokens cached until shortly before they expire).
type OAuth struct {
	TokenFile    string
	Token        string
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
}

func (o OAuth) isZero() bool {
	return o.TokenFile == "" && o.Token == "" && o.TokenURL == "" && o.ClientID == "" && o.ClientSecret == "" && len(o.Scopes) == 0
}

// AddFlags registers the settings on fs with the given defaults for brokers and client id.
func (c *Config) AddFlags(fs *pflag.FlagSet, defaultClientID string) {
	fs.StringSliceVar(&c.Brokers, names.FlagKafkaBrokers, []string{"127.0.0.1:9092"}, "Kafka bootstrap servers (host:port, comma-separated)")
	fs.StringVar(&c.ClientID, names.FlagKafkaClientID, defaultClientID, "Kafka client id")
	fs.BoolVar(&c.TLS, names.FlagKafkaTLS, false, "connect to the brokers with TLS (implied by any --kafka-tls-* file)")
	fs.StringVar(&c.TLSCAFile, names.FlagKafkaTLSCAFile, "", "PEM file of the CA certificates that verify the brokers (default: system roots)")
	fs.StringVar(&c.TLSCertFile, names.FlagKafkaTLSCertFile, "", "PEM client certificate for mutual TLS (needs --kafka-tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, names.FlagKafkaTLSKeyFile, "", "PEM private key of the client certificate")
	fs.StringVar(&c.SASLMechanism, names.FlagKafkaSASLMechanism, "", "SASL mechanism: "+saslMechanisms+" (empty: no SASL)")
	fs.StringVar(&c.SASLUsername, names.FlagKafkaSASLUsername, "", "SASL user name (PLAIN, SCRAM)")
	fs.StringVar(&c.SASLPassword, names.FlagKafkaSASLPassword, "", "SASL password (PLAIN, SCRAM; prefer the ATLAS_KAFKA_SASL_PASSWORD environment variable)")
	fs.StringVar(&c.OAuth.TokenFile, names.FlagKafkaSASLOAuthTokenFile, "", "OAUTHBEARER: file holding the token, read again at every authentication")
	fs.StringVar(&c.OAuth.TokenURL, names.FlagKafkaSASLOAuthTokenURL, "", "OAUTHBEARER: OAuth 2.0 token endpoint of the client credentials grant")
	fs.StringVar(&c.OAuth.ClientID, names.FlagKafkaSASLOAuthClientID, "", "OAUTHBEARER: client id of the client credentials grant")
	fs.StringVar(&c.OAuth.ClientSecret, names.FlagKafkaSASLOAuthClientSecret, "", "OAUTHBEARER: client secret (prefer the ATLAS_KAFKA_SASL_OAUTH_CLIENT_SECRET environment variable)")
	fs.StringSliceVar(&c.OAuth.Scopes, names.FlagKafkaSASLOAuthScopes, nil, "OAUTHBEARER: scopes asked for with the client credentials grant (comma-separated)")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, fmt.Errorf("--%s is empty: give at least one host:port", names.FlagKafkaBrokers))
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("--%s: %q is not host:port", names.FlagKafkaBrokers, b))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("--%s and --%s go together", names.FlagKafkaTLSCertFile, names.FlagKafkaTLSKeyFile))
	}
	errs = append(errs, c.validateSASL()...)
	return errors.Join(errs...)
}

func (c Config) validateSASL() []error {
	var errs []error
	mech := strings.ToUpper(c.SASLMechanism)
	password := c.SASLUsername != "" || c.SASLPassword != ""
	switch mech {
	case "":
		if password || !c.OAuth.isZero() {
			errs = append(errs, fmt.Errorf("SASL credentials given without --%s", names.FlagKafkaSASLMechanism))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" || c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("--%s %s needs --%s and a password", names.FlagKafkaSASLMechanism, c.SASLMechanism, names.FlagKafkaSASLUsername))
		}
	case SASLOAuthBearer:
		o := c.OAuth
		token := o.TokenFile != "" || o.Token != ""
		grant := o.TokenURL != "" || o.ClientID != "" || o.ClientSecret != "" || len(o.Scopes) > 0
		switch {
		case token && grant:
			errs = append(errs, fmt.Errorf("--%s %s: give a token (--%s) or the client credentials grant (--%s), not both",
				names.FlagKafkaSASLMechanism, mech, names.FlagKafkaSASLOAuthTokenFile, names.FlagKafkaSASLOAuthTokenURL))
		case grant && (o.TokenURL == "" || o.ClientID == "" || o.ClientSecret == ""):
			errs = append(errs, fmt.Errorf("--%s %s: the client credentials grant needs --%s, --%s and a client secret",
				names.FlagKafkaSASLMechanism, mech, names.FlagKafkaSASLOAuthTokenURL, names.FlagKafkaSASLOAuthClientID))
		case !token && !grant:
			errs = append(errs, fmt.Errorf("--%s %s needs --%s, or --%s with a client id and secret",
				names.FlagKafkaSASLMechanism, mech, names.FlagKafkaSASLOAuthTokenFile, names.FlagKafkaSASLOAuthTokenURL))
		}
	case SASLAWSMSKIAM:
		if password || !c.OAuth.isZero() {
			errs = append(errs, fmt.Errorf("--%s %s takes its credentials from the AWS environment (IRSA, EKS Pod Identity, AWS_* variables), not from SASL flags",
				names.FlagKafkaSASLMechanism, mech))
		}
	default:
		return []error{fmt.Errorf("--%s %q: want %s", names.FlagKafkaSASLMechanism, c.SASLMechanism, saslMechanisms)}
	}
	if mech != SASLPlain && mech != SASLScramSHA256 && mech != SASLScramSHA512 && mech != "" && mech != SASLAWSMSKIAM && password {
		errs = append(errs, fmt.Errorf("--%s %s does not use a user name or password", names.FlagKafkaSASLMechanism, mech))
	}
	return errs
}

// Opts returns the franz-go options for the configuration.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || len(c.TLSCAPEM) > 0 || len(c.TLSCertPEM) > 0 {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()))
	case SASLOAuthBearer:
		opts = append(opts, kgo.SASL(oauth.Oauth(c.OAuth.tokens())))
	case SASLAWSMSKIAM:
		opts = append(opts, kgo.SASL(aws.ManagedStreamingIAM(awsCredentials())))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	p := tlsconfig.PEM{CA: c.TLSCAPEM, Cert: c.TLSCertPEM, Key: c.TLSKeyPEM}
	files, err := tlsconfig.Files{CA: c.TLSCAFile, Cert: c.TLSCertFile, Key: c.TLSKeyFile}.Read("Kafka")
	if err != nil {
		return nil, err
	}
	if len(p.CA) == 0 {
		p.CA = files.CA
	}
	if len(p.Cert) == 0 {
		p.Cert, p.Key = files.Cert, files.Key
	}
	return tlsconfig.Client(p, false, "Kafka")
}
