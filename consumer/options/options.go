// Package options defines the command-line configuration of `atlas consume <mode>`: the
// flag names, their defaults and their ATLAS_* environment names. The operator builds
// consumer pods from these same names, so both sides cannot drift apart.
package options

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/internal/tlsconfig"
)

// Consumer is the configuration of one consumer process.
type Consumer struct {
	Mode       string
	Runner     runner.Config
	Migrate    bool
	LogLevel   string
	HealthAddr string
	// PostgresWriters is how many concurrent COPY streams the audit sink splits a batch into.
	PostgresWriters int
	// AuditCreatePartitions lets the audit sink create the day partitions of audit_events.
	AuditCreatePartitions bool
}

// AddFlags registers every consumer flag on fs.
func (c *Consumer) AddFlags(fs *pflag.FlagSet, mode string) {
	c.Mode = mode
	r := &c.Runner
	r.Kafka.AddFlags(fs, "atlas-"+mode)
	fs.StringVar(&r.Topic, names.FlagTopic, names.Topic, "topic to consume")
	fs.StringVar(&r.Group, names.FlagGroup, names.DefaultGroup(mode), "Kafka consumer group")
	fs.StringVar(&r.DeadLetterTopic, names.FlagDeadLetterTopic, "", "topic for records that can never be processed (default <topic>.dlq)")
	fs.StringVar(&r.StartOffset, names.FlagStartOffset, "earliest", "where a group without committed offsets starts: earliest or latest")
	fs.IntVar(&r.BatchSize, names.FlagBatchSize, names.DefaultBatchSize, "maximum records per batch")
	fs.DurationVar(&r.BatchWait, names.FlagBatchWait, names.DefaultBatchWait, "maximum time to wait for a batch to fill once its first record arrived")
	fs.IntVar(&r.MaxEventBytes, names.FlagMaxEventBytes, names.DefaultMaxEventBytes, "larger record values are dead-lettered")
	fs.DurationVar(&r.ShutdownTimeout, names.FlagShutdownTimeout, names.DefaultShutdownTimeout, "on SIGTERM, time allowed to finish and commit the batch in flight")
	fs.DurationVar(&r.SessionTimeout, names.FlagSessionTimeout, 45*time.Second, "group session timeout: how long the broker waits for a silent (crashed) member before giving its partitions away")
	fs.IntVar(&c.PostgresWriters, names.FlagPostgresWriters, 2, "audit: concurrent COPY streams per batch (Postgres inserts on one core per stream)")
	if mode == "audit" {
		fs.BoolVar(&c.AuditCreatePartitions, names.FlagAuditCreatePartitions, true,
			"create the day partition of audit_events an event needs (when the table is partitioned, as migration 00005 makes a new one); false: wait for a partition manager of your own to create it")
	}
	fs.BoolVar(&c.Migrate, names.FlagMigrate, false, "apply pending database migrations at start instead of refusing to run on an out-of-date schema")
	fs.StringVar(&c.LogLevel, names.FlagLogLevel, "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.HealthAddr, names.FlagHealthAddr, names.DefaultHealthAddr, "address serving /metrics, /healthz and /readyz")
}

// Complete fills derived defaults and validates everything.
func (c *Consumer) Complete() error {
	if c.Runner.DeadLetterTopic == "" {
		c.Runner.DeadLetterTopic = names.DeadLetterTopicFor(c.Runner.Topic)
	}
	c.Runner.Kafka.SASLMechanism = strings.ToUpper(c.Runner.Kafka.SASLMechanism)
	errs := []error{c.Runner.Validate()}
	if c.PostgresWriters < 1 {
		errs = append(errs, fmt.Errorf("--%s must be at least 1", names.FlagPostgresWriters))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParseLevel parses a --log-level value.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--%s %q: want debug, info, warn or error", names.FlagLogLevel, s)
	}
	return l, nil
}

// Search is the indexer's search server configuration.
type Search struct {
	Addresses  []string
	Index      string
	OpenSearch bool
	// TLS are the PEM files that verify the server (CA) and authenticate the indexer
	// (client certificate and key); TLSInsecureSkipVerify turns verification off.
	TLS                   tlsconfig.Files
	TLSInsecureSkipVerify bool
	Retention             time.Duration
	// BulkConcurrency is how many concurrent bulk requests a batch is split into.
	BulkConcurrency int
	// BulkTimeout bounds one bulk request; MaxReadAge bounds how old a read item state
	// may be when it is written; ItemMissingTimeout is how long an event waits for its
	// item's row (see indexer.Config).
	BulkTimeout, MaxReadAge, ItemMissingTimeout time.Duration
}

// AddFlags registers the search server flags on fs.
func (s *Search) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&s.Addresses, names.FlagElasticsearchAddresses, []string{"http://127.0.0.1:9200"}, "Elasticsearch URLs (comma-separated); credentials from "+names.EnvElasticsearchUsername+"/"+names.EnvElasticsearchPassword+" or "+names.EnvElasticsearchAPIKey)
	fs.StringVar(&s.Index, names.FlagElasticsearchIndex, names.DefaultIndexAlias, "index alias the documents are written to (created, with the versioned index <alias>-v1 behind it, when missing)")
	fs.BoolVar(&s.OpenSearch, names.FlagElasticsearchOpenSearch, false, "the server is OpenSearch (2.x or 3.x), not Elasticsearch: accept answers without the X-Elastic-Product header")
	fs.StringVar(&s.TLS.CA, names.FlagElasticsearchTLSCAFile, "", "PEM file of the CA certificates that verify the search server (default: system roots)")
	fs.StringVar(&s.TLS.Cert, names.FlagElasticsearchTLSCertFile, "", "PEM client certificate presented to the search server (needs --"+names.FlagElasticsearchTLSKeyFile+")")
	fs.StringVar(&s.TLS.Key, names.FlagElasticsearchTLSKeyFile, "", "PEM private key of the client certificate")
	fs.BoolVar(&s.TLSInsecureSkipVerify, names.FlagElasticsearchTLSInsecure, false, "do NOT verify the search server's certificate (anyone on the path can read and change the index traffic; for tests only)")
	fs.IntVar(&s.BulkConcurrency, names.FlagBulkConcurrency, 4, "concurrent bulk requests per batch")
	fs.DurationVar(&s.Retention, names.FlagProcessedRetention, 7*24*time.Hour, "how long applied event ids are remembered (per index and group) to drop redeliveries")
	fs.DurationVar(&s.BulkTimeout, names.FlagBulkTimeout, names.DefaultBulkTimeout, "time allowed for one bulk request")
	fs.DurationVar(&s.MaxReadAge, names.FlagMaxReadAge, names.DefaultMaxReadAge, "items read longer ago are read again before they are written; with --"+names.FlagBulkTimeout+" keep it below the index's index.gc_deletes (60s by default)")
	fs.DurationVar(&s.ItemMissingTimeout, names.FlagItemMissingTimeout, names.DefaultItemMissingTimeout, "how long an ItemCreated/ItemUpdated event waits for its item's row before it is dead-lettered as item-missing")
}

// Validate reports every problem of the search configuration.
func (s Search) Validate() error {
	var errs []error
	if len(s.Addresses) == 0 {
		errs = append(errs, fmt.Errorf("--%s is empty", names.FlagElasticsearchAddresses))
	}
	if s.Index == "" {
		errs = append(errs, fmt.Errorf("--%s is empty", names.FlagElasticsearchIndex))
	}
	if (s.TLS.Cert == "") != (s.TLS.Key == "") {
		errs = append(errs, fmt.Errorf("--%s and --%s go together", names.FlagElasticsearchTLSCertFile, names.FlagElasticsearchTLSKeyFile))
	}
	if s.TLSInsecureSkipVerify && s.TLS.CA != "" {
		errs = append(errs, fmt.Errorf("--%s and --%s contradict each other: a CA is never consulted when verification is off", names.FlagElasticsearchTLSInsecure, names.FlagElasticsearchTLSCAFile))
	}
	if s.BulkConcurrency < 1 {
		errs = append(errs, fmt.Errorf("--%s must be at least 1", names.FlagBulkConcurrency))
	}
	if s.Retention < 0 {
		errs = append(errs, fmt.Errorf("--%s must not be negative", names.FlagProcessedRetention))
	}
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{{names.FlagBulkTimeout, s.BulkTimeout}, {names.FlagMaxReadAge, s.MaxReadAge}, {names.FlagItemMissingTimeout, s.ItemMissingTimeout}} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("--%s %s: must be positive", d.flag, d.value))
		}
	}
	return errors.Join(errs...)
}

// TLSConfig is the client TLS configuration of the search server, nil when no TLS flag is
// given (the system roots then verify https addresses).
func (s Search) TLSConfig() (*tls.Config, error) {
	if s.TLS == (tlsconfig.Files{}) && !s.TLSInsecureSkipVerify {
		return nil, nil
	}
	p, err := s.TLS.Read("search server")
	if err != nil {
		return nil, err
	}
	return tlsconfig.Client(p, s.TLSInsecureSkipVerify, "search server")
}
