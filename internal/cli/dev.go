package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/devkafka"
)

// newDevCommand groups development stand-ins for the local demo stack; they are not
// product features.
func newDevCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "dev",
		Short:  "Development stand-ins for the local demo stack (not product features)",
		Hidden: true,
	}
	cmd.AddCommand(newDevKafkaCommand())
	return cmd
}

func newDevKafkaCommand() *cobra.Command {
	var cfg devkafka.Config
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Run an embedded Kafka-protocol broker (franz-go kfake) until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := devkafka.Start(cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "embedded kafka (kfake) listening on %s\n", strings.Join(b.Addrs(), ","))
			<-cmd.Context().Done()
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Host, "host", "127.0.0.1", "address to listen on and advertise (the local node's pods reach the host at its bridge address, see hack/NODE.md)")
	fs.IntVar(&cfg.Port, "port", 9092, "port to listen on (0 picks a free one)")
	fs.Int32Var(&cfg.Partitions, "partitions", 6, "partitions of seeded and auto-created topics")
	fs.StringSliceVar(&cfg.Topics, "topics", []string{names.Topic, names.Topic + ".dlq"}, "topics to create at start")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "keep the log on disk here (empty: memory only)")
	return cmd
}
