// Package devkafka runs an embedded Kafka-protocol broker built on franz-go's kfake,
// for the local demo stack and quick unit-level tests. It is NOT Apache Kafka: the
// integration tests run against a real broker (hack/kafka.sh).
package devkafka

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config describes the embedded cluster.
type Config struct {
	// Host is the address to listen on and advertise (default 127.0.0.1). Pods of the
	// local node reach the host on its bridge address (hack/node.sh), not on 127.0.0.1.
	Host string
	// Port to listen on; 0 picks a free one.
	Port int
	// Partitions of every seeded or auto-created topic.
	Partitions int32
	// Topics created at start.
	Topics []string
	// DataDir keeps the log on disk so it survives restarts; empty keeps it in memory.
	DataDir string
}

// Broker is a running embedded cluster of one broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts the broker on cfg.Host (127.0.0.1 by default).
func Start(cfg Config) (*Broker, error) {
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		kfake.AllowAutoTopicCreation(),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(cfg.Partitions, cfg.Topics...))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if host := cfg.Host; host != "" && host != "127.0.0.1" {
		// kfake listens on 127.0.0.1 and advertises what it listens on: move the
		// listener to the host, keeping the port.
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, port))
		}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return &Broker{cluster: c}, nil
}

// Addrs returns the bootstrap addresses.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker.
func (b *Broker) Close() { b.cluster.Close() }
