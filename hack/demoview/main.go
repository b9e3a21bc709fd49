// Command demoview is the live part of `make demo` (hack/demo.sh starts everything else):
// it publishes bursts of generated domain events and shows, refreshed every second, what
// the system does with them: events produced, audit rows, items and indexed documents,
// each consumer's lag, desired and ready pods, and the operator's recent Events. On
// Ctrl-C (or, with --once, when the first burst is worked off) it lets the consumers
// finish, prints a summary whose counts must agree and exits non-zero when they do not.
//
// A development tool, not part of the product.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	kubeconfig string
	namespace  string
	brokers    string
	topic      string
	postgres   string
	search     string
	index      string
	atlas      string
	burstSize  int
	burstEvery time.Duration
	settle     time.Duration
	once       bool
	logFile    string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster the AtlasConsumers live in")
	flag.StringVar(&cfg.namespace, "namespace", "atlas-demo", "namespace of the AtlasConsumers")
	flag.StringVar(&cfg.brokers, "kafka-brokers", "127.0.0.1:9092", "Kafka bootstrap servers")
	flag.StringVar(&cfg.topic, "topic", "atlas.domain-events.v1", "the events topic")
	flag.StringVar(&cfg.postgres, "postgres", "", "Postgres URL (audit_events and items)")
	flag.StringVar(&cfg.search, "search", "", "search server URL")
	flag.StringVar(&cfg.index, "index", "atlas-items", "index alias of the item documents")
	flag.StringVar(&cfg.atlas, "atlas", "bin/atlas", "the atlas binary (its produce command publishes the bursts)")
	flag.IntVar(&cfg.burstSize, "burst-size", 20_000, "events per burst")
	flag.DurationVar(&cfg.burstEvery, "burst-every", 75*time.Second, "time from one burst's start to the next")
	flag.DurationVar(&cfg.settle, "settle", 2*time.Minute, "how long the consumers get to finish before the summary")
	flag.BoolVar(&cfg.once, "once", false, "one burst; summary once the indexer is back at its minimum")
	flag.StringVar(&cfg.logFile, "log", "demo-produce.log", "file for the producer's output")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "demoview:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w, err := newWatcher(cfg)
	if err != nil {
		return err
	}
	defer w.close()
	screen := newScreen(os.Stdout)
	traffic := startTraffic(ctx, cfg)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sawScaleUp := false
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			snap := w.snapshot(ctx)
			screen.draw(snap, traffic.status())
			if cfg.once {
				// Done when the burst is worked off and the indexer is back at its minimum
				// (after its scale-up, or a minute after the burst if it never scaled), or
				// when the burst failed.
				sawScaleUp = sawScaleUp || snap.maxDesired() > 1
				finished, failed := traffic.finished()
				if failed || (!finished.IsZero() && snap.settled() && (sawScaleUp || time.Since(finished) > time.Minute)) {
					running = false
				}
			}
		}
	}
	stop()
	traffic.stop()

	// The consumers finish what was published, then the counts are compared; a second
	// Ctrl-C (or SIGTERM) cuts the wait short.
	finish, cancel := context.WithTimeout(context.Background(), cfg.settle)
	defer cancel()
	interrupted, cancelInt := signal.NotifyContext(finish, os.Interrupt, syscall.SIGTERM)
	defer cancelInt()
	snap := w.snapshot(interrupted)
	for !snap.caughtUp() && interrupted.Err() == nil {
		screen.draw(snap, "stopped; the consumers finish what was published")
		select {
		case <-interrupted.Done():
		case <-time.After(time.Second):
		}
		snap = w.snapshot(interrupted)
	}
	w.refreshIndex(context.Background())
	snap = w.snapshot(context.Background())
	screen.draw(snap, "stopped")
	if err := summary(os.Stdout, snap, traffic); err != nil {
		return err
	}
	_, failed := traffic.finished()
	if failed {
		return errors.New(traffic.status())
	}
	return nil
}
