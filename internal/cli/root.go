// Package cli wires the atlas subcommands (cobra) to the packages that do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/atlas-platform/atlas-operator/internal/flagenv"
)

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "atlas:", err)
		var exit exitError
		if errors.As(err, &exit) {
			return exit.code
		}
		return 1
	}
	return 0
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// NewRootCommand builds the `atlas` command tree.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "atlas",
		Short: "Atlas consumer operator: the operator and its audit and indexer consumers in one binary",
		Long: `atlas runs the Atlas consumer operator and the consumers it manages.

Every flag can also be set from the environment: --kafka-brokers is ATLAS_KAFKA_BROKERS.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagenv.Apply(cmd.Flags()); err != nil {
				return err
			}
			return nil
		},
	}
	root.AddCommand(
		newManagerCommand(),
		newConsumeCommand(),
		newMigrateCommand(),
		newProduceCommand(),
		newVersionCommand(),
		newDevCommand(),
	)
	return root
}
