package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notImplemented is what a subcommand whose issue has not landed yet does: say so and
// fail, never pretend to work.
func notImplemented(what, issue string) error {
	return exitError{code: 3, err: fmt.Errorf("%s is not implemented yet (tracked in %s)", what, issue)}
}

func newManagerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "manager",
		Short: "Run the operator: reconcile AtlasConsumer resources into consumer Deployments",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return notImplemented("atlas manager", "the operator issue")
		},
	}
}

func newConsumeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Run a consumer of atlas.domain-events.v1",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "audit",
			Short: "Store every event in Postgres audit_events, exactly once in effect",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				return notImplemented("atlas consume audit", "the audit consumer issue")
			},
		},
		&cobra.Command{
			Use:   "indexer",
			Short: "Index items from Postgres into Elasticsearch on ItemCreated/Updated/Deleted",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				return notImplemented("atlas consume indexer", "the indexer consumer issue")
			},
		},
	)
	return cmd
}

func newMigrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations",
		RunE: func(*cobra.Command, []string) error {
			return notImplemented("atlas migrate", "the audit consumer issue")
		},
	}
}
