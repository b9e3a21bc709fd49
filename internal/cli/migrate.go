package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/backoff"
	"github.com/atlas-platform/atlas-operator/migrations"
)

func newMigrateCommand() *cobra.Command {
	var timeout time.Duration
	var logLevel string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply or inspect the database migrations (database from " + names.EnvPostgresDSN + ")",
	}
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for Postgres (and for the migration lock)")
	cmd.PersistentFlags().StringVar(&logLevel, names.FlagLogLevel, "info", "log level: debug, info, warn or error")
	withMigrator := func(ctx context.Context, fn func(context.Context, *migrations.Migrator) error) error {
		dsn := os.Getenv(names.EnvPostgresDSN)
		if dsn == "" {
			return fmt.Errorf("%s is not set: give the Postgres connection string in the environment", names.EnvPostgresDSN)
		}
		log, err := newLogger(logLevel)
		if err != nil {
			return err
		}
		m, err := migrations.Open(dsn, log)
		if err != nil {
			return redactDSN(err, dsn)
		}
		defer m.Close()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		onRetry := logRetry(log, "postgres", nil, func(err error) error { return redactDSN(err, dsn) })
		err = backoff.Retry(ctx, backoff.Default, onRetry, func(ctx context.Context) error { return permanentIfRefused(fn(ctx, m)) })
		return redactDSN(err, dsn)
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (under an advisory lock: concurrent runs are safe)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMigrator(cmd.Context(), func(ctx context.Context, m *migrations.Migrator) error {
				n, err := m.Up(ctx)
				if err != nil {
					return err
				}
				current, _, err := m.Versions(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "applied %d migrations; the schema is at version %d\n", n, current)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Print the schema version and exit 1 when migrations are pending",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var outOfDate error
			err := withMigrator(cmd.Context(), func(ctx context.Context, m *migrations.Migrator) error {
				current, target, err := m.Versions(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schema version %d, this binary's newest %d\n", current, target)
				if err := m.Check(ctx); errors.Is(err, migrations.ErrOutOfDate) {
					outOfDate = err
					return nil
				} else {
					return err
				}
			})
			if err != nil {
				return err
			}
			return outOfDate
		},
	})
	return cmd
}
