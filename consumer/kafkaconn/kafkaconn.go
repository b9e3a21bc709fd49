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
)

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
}

// AddFlags registers the settings on fs with the given defaults for brokers and client id.
func (c *Config) AddFlags(fs *pflag.FlagSet, defaultClientID string) {
	fs.StringSliceVar(&c.Brokers, names.FlagKafkaBrokers, []string{"127.0.0.1:9092"}, "Kafka bootstrap servers (host:port, comma-separated)")
	fs.StringVar(&c.ClientID, names.FlagKafkaClientID, defaultClientID, "Kafka client id")
	fs.BoolVar(&c.TLS, names.FlagKafkaTLS, false, "connect to the brokers with TLS (implied by any --kafka-tls-* file)")
	fs.StringVar(&c.TLSCAFile, names.FlagKafkaTLSCAFile, "", "PEM file of the CA certificates that verify the brokers (default: system roots)")
	fs.StringVar(&c.TLSCertFile, names.FlagKafkaTLSCertFile, "", "PEM client certificate for mutual TLS (needs --kafka-tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, names.FlagKafkaTLSKeyFile, "", "PEM private key of the client certificate")
	fs.StringVar(&c.SASLMechanism, names.FlagKafkaSASLMechanism, "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&c.SASLUsername, names.FlagKafkaSASLUsername, "", "SASL user name")
	fs.StringVar(&c.SASLPassword, names.FlagKafkaSASLPassword, "", "SASL password (prefer the ATLAS_KAFKA_SASL_PASSWORD environment variable)")
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
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			errs = append(errs, fmt.Errorf("SASL credentials given without --%s", names.FlagKafkaSASLMechanism))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" || c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("--%s %s needs --%s and a password", names.FlagKafkaSASLMechanism, c.SASLMechanism, names.FlagKafkaSASLUsername))
		}
	default:
		errs = append(errs, fmt.Errorf("--%s %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", names.FlagKafkaSASLMechanism, c.SASLMechanism))
	}
	return errors.Join(errs...)
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
