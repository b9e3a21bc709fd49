// Command atlas is the one binary of the Atlas consumer operator: the operator
// (`atlas manager`), the audit and indexer consumers (`atlas consume audit|indexer`),
// schema migrations, an event producer and its version.
package main

import (
	"os"

	"github.com/atlas-platform/atlas-operator/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
