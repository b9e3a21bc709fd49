package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atlas-platform/atlas-operator/consumer/audit"
	"github.com/atlas-platform/atlas-operator/consumer/indexer"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/consumer/options"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
	"github.com/atlas-platform/atlas-operator/migrations"
)

func newConsumeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Run a consumer of atlas.domain-events.v1",
	}
	var auditOpts options.Consumer
	auditCmd := &cobra.Command{
		Use:   "audit",
		Short: "Store every event in Postgres audit_events, exactly once in effect",
		Long: `Consume every event of the topic in a consumer group and insert it into the Postgres
table audit_events (deduplicated by event_id). Records that are not valid envelopes go to
the dead-letter topic with the reason. Offsets are committed only after the batch is in
Postgres (or dead-lettered).

The database is given by the ` + names.EnvPostgresDSN + ` environment variable (never logged).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConsumer(cmd.Context(), &auditOpts, func(_ context.Context, pool *pgxpool.Pool, log *slog.Logger, m *observe.Metrics, _ *observe.Readiness) (runner.Sink, error) {
				return audit.NewSink(pool, audit.Config{Writers: auditOpts.PostgresWriters, CreatePartitions: auditOpts.AuditCreatePartitions}, log, m), nil
			})
		},
	}
	auditOpts.AddFlags(auditCmd.Flags(), "audit")
	var indexerOpts options.Consumer
	var search options.Search
	indexerCmd := &cobra.Command{
		Use:   "indexer",
		Short: "Index items from Postgres into Elasticsearch on ItemCreated/Updated/Deleted",
		Long: `Consume the item events of the topic and keep the search index in step with the items
table in Postgres (the truth): for each batch, read every touched item once and write its
current state (or its deletion) once, with the item's version as the external version so
an older state never overwrites a newer one. Other events are skipped by their event_type
header. Applied event ids are recorded per target (the index behind the alias, and the
consumer group) in indexer_applied_events, after the write: a new index or a new group
rebuilds from the topic.

The database is given by ` + names.EnvPostgresDSN + `; search credentials by
` + names.EnvElasticsearchUsername + `/` + names.EnvElasticsearchPassword + ` or ` + names.EnvElasticsearchAPIKey + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := search.Validate(); err != nil {
				return err
			}
			indexerOpts.Runner.Skip = indexer.SkipRecord
			searchTLS, err := search.TLSConfig()
			if err != nil {
				return err
			}
			return runConsumer(cmd.Context(), &indexerOpts, func(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, m *observe.Metrics, ready *observe.Readiness) (runner.Sink, error) {
				if search.TLSInsecureSkipVerify {
					log.Warn("TLS VERIFICATION OF THE SEARCH SERVER IS OFF: anyone on the network path can read and change what the indexer writes; give its CA instead",
						"flag", "--"+names.FlagElasticsearchTLSInsecure, "addresses", search.Addresses)
				}
				es, err := indexer.Connect(ctx, indexer.ClientConfig{
					Addresses: search.Addresses, OpenSearch: search.OpenSearch, TLS: searchTLS,
					Username: os.Getenv(names.EnvElasticsearchUsername), Password: os.Getenv(names.EnvElasticsearchPassword),
					APIKey: os.Getenv(names.EnvElasticsearchAPIKey),
				}, search.Index, search.BulkTimeout, indexerOpts.Runner.Backoff, log, m, ready)
				if err != nil {
					return nil, err
				}
				return indexer.NewSink(indexer.Config{
					Alias: search.Index, Group: indexerOpts.Runner.Group, Retention: search.Retention,
					BulkConcurrency: search.BulkConcurrency, BulkTimeout: search.BulkTimeout,
					MaxReadAge: search.MaxReadAge, RowWait: search.ItemMissingTimeout, Backoff: indexerOpts.Runner.Backoff,
				}, pool, es, log, m, ready), nil
			})
		},
	}
	indexerOpts.AddFlags(indexerCmd.Flags(), "indexer")
	search.AddFlags(indexerCmd.Flags())
	cmd.AddCommand(auditCmd, indexerCmd)
	return cmd
}

// newLogger returns the JSON logger of a consumer at the given level.
func newLogger(level string) (*slog.Logger, error) {
	l, err := options.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// consumerGCPercent is the Go garbage collector's target the consumers run with: 50 unless
// GOGC says otherwise (set reports whether to apply it). A consumer's heap is mostly short
// lived (fetched records, a batch, a bulk request and its answer); at Go's default of 100
// the heap grows to twice what is live before a collection. Measured with the indexer's
// cost curve (make bench, 1M item events): peak RSS 135 MiB at 50 against 155 MiB at 100,
// at about 13% more CPU per event and the same rate.
func consumerGCPercent(gogc string) (percent int, set bool) {
	if gogc != "" {
		return 0, false
	}
	return 50, true
}

// runConsumer is the life of a consumer process: check the schema, serve health and
// metrics, and run the group consumer into the sink until ctx ends.
func runConsumer(ctx context.Context, opts *options.Consumer, newSink func(context.Context, *pgxpool.Pool, *slog.Logger, *observe.Metrics, *observe.Readiness) (runner.Sink, error)) error {
	if err := opts.Complete(); err != nil {
		return err
	}
	log, err := newLogger(opts.LogLevel)
	if err != nil {
		return err
	}
	log = log.With("consumer", opts.Mode)
	if percent, set := consumerGCPercent(os.Getenv("GOGC")); set {
		debug.SetGCPercent(percent)
		log.Info("Go garbage collector target set (GOGC is not set)", "gogc", percent)
	}
	dsn := os.Getenv(names.EnvPostgresDSN)
	if dsn == "" {
		return fmt.Errorf("%s is not set: give the Postgres connection string in the environment", names.EnvPostgresDSN)
	}
	metrics := observe.NewMetrics(opts.Mode)
	ready := observe.NewReadiness()
	srv, err := observe.Listen(opts.HealthAddr, metrics, ready)
	if err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	go srv.Run(srvCtx, log)
	log.Info("serving metrics and health", "addr", srv.Addr())

	if err := prepareSchema(ctx, dsn, opts.Migrate, log, ready); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres pool: %w", redactDSN(err, dsn))
	}
	defer pool.Close()
	sink, err := newSink(ctx, pool, log, metrics, ready)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r, err := runner.New(opts.Runner, sink, log, metrics, ready)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// prepareSchema waits for Postgres, then applies the migrations (migrate) or refuses an
// out-of-date schema.
func prepareSchema(ctx context.Context, dsn string, migrate bool, log *slog.Logger, ready *observe.Readiness) error {
	m, err := migrations.Open(dsn, log)
	if err != nil {
		return redactDSN(err, dsn)
	}
	defer m.Close()
	onRetry := logRetry(log, "postgres", ready, func(err error) error { return redactDSN(err, dsn) })
	err = backoff.Retry(ctx, backoff.Default, onRetry, func(ctx context.Context) error {
		if migrate {
			n, err := m.Up(ctx)
			if err == nil && n > 0 {
				log.Info("applied database migrations", "count", n)
			}
			return permanentIfRefused(err)
		}
		err := m.Check(ctx)
		if errors.Is(err, migrations.ErrOutOfDate) {
			return backoff.Permanent(err)
		}
		return permanentIfRefused(err)
	})
	if err != nil && ctx.Err() == nil {
		return redactDSN(err, dsn)
	}
	ready.Set("postgres", nil)
	return nil
}

// redactDSN keeps a DSN (and its password) out of an error message.
func redactDSN(err error, dsn string) error {
	if err == nil || dsn == "" || !strings.Contains(err.Error(), dsn) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), dsn, "$"+names.EnvPostgresDSN))
}

// permanentIfRefused marks an error Postgres answered with (bad SQL, permissions) as
// permanent: only an unreachable server is worth waiting for.
func permanentIfRefused(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return backoff.Permanent(err)
	}
	return err
}

// logRetry returns a backoff hook that logs each retry of a dependency (with the error
// passed through redact) and, when ready is not nil, reports the dependency not ready.
func logRetry(log *slog.Logger, dependency string, ready *observe.Readiness, redact func(error) error) func(int, error, time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		if ready != nil {
			ready.Set(dependency, err)
		}
		log.Warn("dependency unavailable; retrying", "dependency", dependency, "attempt", attempt+1,
			"retry_in", wait.Round(time.Millisecond).String(), "error", redact(err))
	}
}
