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
