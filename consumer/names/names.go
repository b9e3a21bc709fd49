// Package names holds the names the consumers and the operator share: the events topic,
// the consumers' flags and their ATLAS_* environment variables, and their defaults. It
// imports nothing, so the operator's pure builders and the API types use it without the
// consumer runtime, and both sides cannot drift apart.
package names

import (
	"strings"
	"time"
)

// Topic is the Kafka topic Atlas services publish their domain events to, and the
// consumers' default.
const Topic = "atlas.domain-events.v1"

// DeadLetterTopicFor is the default dead-letter topic of a topic: "<topic>.dlq".
func DeadLetterTopicFor(topic string) string { return topic + ".dlq" }

// DefaultGroup is the consumer group of a mode when none is given: "atlas-audit".
func DefaultGroup(mode string) string { return "atlas-" + mode }

// EnvPrefix starts every environment variable name.
const EnvPrefix = "ATLAS_"

// EnvName returns the environment variable that backs a flag: "kafka-brokers" ->
// "ATLAS_KAFKA_BROKERS".
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Flag names of the Kafka connection, shared by every command.
const (
	FlagKafkaBrokers       = "kafka-brokers"
	FlagKafkaClientID      = "kafka-client-id"
	FlagKafkaTLS           = "kafka-tls"
	FlagKafkaTLSCAFile     = "kafka-tls-ca-file"
	FlagKafkaTLSCertFile   = "kafka-tls-cert-file"
	FlagKafkaTLSKeyFile    = "kafka-tls-key-file"
	FlagKafkaSASLMechanism = "kafka-sasl-mechanism"
	FlagKafkaSASLUsername  = "kafka-sasl-username"
	FlagKafkaSASLPassword  = "kafka-sasl-password"
	// OAUTHBEARER: a token file, or the OAuth 2.0 client credentials grant.
	FlagKafkaSASLOAuthTokenFile    = "kafka-sasl-oauth-token-file"
	FlagKafkaSASLOAuthTokenURL     = "kafka-sasl-oauth-token-url"
	FlagKafkaSASLOAuthClientID     = "kafka-sasl-oauth-client-id"
	FlagKafkaSASLOAuthClientSecret = "kafka-sasl-oauth-client-secret"
	FlagKafkaSASLOAuthScopes       = "kafka-sasl-oauth-scopes"
)

// Flag names of the consumers.
const (
	FlagTopic           = "topic"
	FlagGroup           = "group"
	FlagDeadLetterTopic = "dead-letter-topic"
	FlagStartOffset     = "start-offset"
	FlagBatchSize       = "batch-size"
	FlagBatchWait       = "batch-wait"
	FlagMaxEventBytes   = "max-event-bytes"
	FlagShutdownTimeout = "shutdown-timeout"
	FlagSessionTimeout  = "session-timeout"
	FlagMigrate         = "migrate"
	FlagLogLevel        = "log-level"
	FlagHealthAddr      = "health-addr"
	FlagPostgresWriters = "postgres-writers"
	// FlagAuditCreatePartitions lets the audit consumer create audit_events' day partitions.
	FlagAuditCreatePartitions = "audit-create-partitions"
)

// Flag names of the indexer's search server settings.
const (
	FlagElasticsearchAddresses   = "elasticsearch-addresses"
	FlagElasticsearchIndex       = "elasticsearch-index"
	FlagElasticsearchOpenSearch  = "elasticsearch-opensearch"
	FlagElasticsearchTLSCAFile   = "elasticsearch-tls-ca-file"
	FlagElasticsearchTLSCertFile = "elasticsearch-tls-cert-file"
	FlagElasticsearchTLSKeyFile  = "elasticsearch-tls-key-file"
	FlagElasticsearchTLSInsecure = "elasticsearch-tls-insecure-skip-verify"
	FlagProcessedRetention       = "processed-retention"
	FlagBulkConcurrency          = "bulk-concurrency"
	FlagBulkTimeout              = "bulk-timeout"
	FlagMaxReadAge               = "max-read-age"
	FlagItemMissingTimeout       = "item-missing-timeout"
)

// EnvPostgresDSN holds the Postgres connection string. It has no flag on purpose: a
// DSN carries a password, and flags show up in process listings. It is never logged.
const EnvPostgresDSN = EnvPrefix + "POSTGRES_DSN"

// Search server credentials come from the environment only, like the Postgres DSN.
const (
	EnvElasticsearchUsername = EnvPrefix + "ELASTICSEARCH_USERNAME"
	EnvElasticsearchPassword = EnvPrefix + "ELASTICSEARCH_PASSWORD"
	EnvElasticsearchAPIKey   = EnvPrefix + "ELASTICSEARCH_API_KEY"
)

// Defaults of the consumers.
const (
	DefaultBatchSize       = 2000
	DefaultBatchWait       = 100 * time.Millisecond
	DefaultMaxEventBytes   = 1 << 20
	DefaultShutdownTimeout = 25 * time.Second
	DefaultHealthAddr      = ":8080"
	// HealthPort is the port of DefaultHealthAddr (metrics, /healthz, /readyz).
	HealthPort = 8080
)

// DefaultIndexAlias is the alias the indexer writes item documents to.
const DefaultIndexAlias = "atlas-items"

// Defaults of the indexer's timing flags. DefaultMaxReadAge + DefaultBulkTimeout stays
// below index.gc_deletes' default of 60s (see indexer.Config.MaxReadAge).
const (
	DefaultBulkTimeout        = 30 * time.Second
	DefaultMaxReadAge         = 15 * time.Second
	DefaultItemMissingTimeout = 30 * time.Second
)
