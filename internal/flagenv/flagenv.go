// Package flagenv gives every command-line flag an ATLAS_* environment fallback, so a
// flag --kafka-brokers can also be set as ATLAS_KAFKA_BROKERS. The operator builds
// consumer pods' environment with Name, the same function the binary reads with.
package flagenv

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/atlas-platform/atlas-operator/consumer/names"
)

// Name returns the environment variable that backs the flag: "kafka-brokers" ->
// "ATLAS_KAFKA_BROKERS" (names.EnvName, which the operator builds pods with).
func Name(flag string) string { return names.EnvName(flag) }

// Apply sets every flag of fs that was not given on the command line from its
// environment variable, when that variable is set. A flag given explicitly wins. Every
// unusable variable is reported.
func Apply(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		val, ok := os.LookupEnv(Name(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, val); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %w", Name(f.Name), err))
		}
	})
	return errors.Join(errs...)
}
