package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
)

// produceConfig is the configuration of `atlas produce`.
type produceConfig struct {
	Kafka    kafkaconn.Config
	Topic    string
	File     string
	Generate int
	Rate     float64
	Seed     uint64
	Progress string
	// ApplyItems writes generated item events to the items table (ATLAS_POSTGRES_DSN)
	// before publishing them, as the Atlas API does.
	ApplyItems bool
}

func newProduceCommand() *cobra.Command {
	var cfg produceConfig
	cmd := &cobra.Command{
		Use:   "produce [--file FILE | --generate N]",
		Short: "Publish v1 envelopes from JSON lines (file or stdin), or generate realistic traffic",
		Long: `Publish domain events to the events topic.

Without --generate, reads one JSON envelope per line from --file (default stdin), validates
each, and publishes the valid ones. A bad line is reported with its line number and nothing
is sent for it; the command then exits with status 2.

With --generate N, publishes N realistic synthetic events (collections, memberships, items
with title/content/source_url, updates and deletes, jobs), at most --rate events/s. With
--apply-items it also plays the Atlas API's part: each item change is written to the items
table of ` + names.EnvPostgresDSN + ` (migrated) before its event is published, so the
indexer finds the state the event announces.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Rate < 0 {
				return errors.New("--rate must not be negative")
			}
			conn, err := cfg.Kafka.Opts()
			if err != nil {
				return err
			}
			client, err := kgo.NewClient(append(conn,
				kgo.DefaultProduceTopic(cfg.Topic),
				kgo.ProducerLinger(5*time.Millisecond),
				kgo.RecordRetries(10),
			)...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer client.Close()
			p := &producer{cfg: cfg, client: client, out: cmd.ErrOrStderr()}
			if cfg.ApplyItems {
				if cfg.Generate == 0 {
					return errors.New("--apply-items goes with --generate")
				}
				dsn := os.Getenv(names.EnvPostgresDSN)
				if dsn == "" {
					return fmt.Errorf("--apply-items: %s is not set: give the Postgres connection string in the environment", names.EnvPostgresDSN)
				}
				pool, err := pgxpool.New(cmd.Context(), dsn)
				if err != nil {
					return fmt.Errorf("--apply-items: %w", redactDSN(err, dsn))
				}
				defer pool.Close()
				p.items = pool
			}
			if cfg.Generate > 0 {
				return p.generate(cmd.Context())
			}
			in := cmd.InOrStdin()
			if cfg.File != "" && cfg.File != "-" {
				f, err := os.Open(cfg.File)
				if err != nil {
					return fmt.Errorf("open events file: %w", err)
				}
				defer f.Close()
				in = f
			}
			return p.lines(cmd.Context(), in)
		},
	}
	fs := cmd.Flags()
	cfg.Kafka.AddFlags(fs, "atlas-produce")
	fs.StringVar(&cfg.Topic, "topic", names.Topic, "topic to publish to")
	fs.StringVarP(&cfg.File, "file", "f", "-", "JSON-lines file of envelopes ('-' = stdin)")
	fs.IntVar(&cfg.Generate, "generate", 0, "generate and publish N synthetic events instead of reading input")
	fs.Float64Var(&cfg.Rate, "rate", 0, "maximum events per second when generating (0 = as fast as possible)")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "random seed of the generator")
	fs.StringVar(&cfg.Progress, "progress", "auto", "progress bar: auto (on a terminal), always or never")
	fs.BoolVar(&cfg.ApplyItems, "apply-items", false, "with --generate: write item changes to the items table ("+names.EnvPostgresDSN+") before publishing them, as the Atlas API does")
	return cmd
}

type producer struct {
	cfg    produceConfig
	client *kgo.Client
	out    io.Writer
	// items is the database item changes are written to first (--apply-items).
	items *pgxpool.Pool

	sent    atomic.Int64
	failed  atomic.Bool
	errOnce sync.Once
	err     error // set once by a failed produce callback; read after Flush or once failed is true
}

// produce sends one record asynchronously and remembers the first failure.
func (p *producer) produce(ctx context.Context, env *event.Envelope) error {
	r, err := event.Record(p.cfg.Topic, env)
	if err != nil {
		return err
	}
	p.client.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			p.errOnce.Do(func() {
				p.err = fmt.Errorf("publish event %s: %w", env.EventID, err)
				p.failed.Store(true)
			})
			return
		}
		p.sent.Add(1)
	})
	return nil
}

func (p *producer) flush(ctx context.Context) error {
	if err := p.client.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return p.err
}

// lines publishes each valid envelope line and reports each invalid one.
func (p *producer) lines(ctx context.Context, in io.Reader) error {
	r := bufio.NewReaderSize(in, 1<<20)
	bad := 0
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			raw := bytes.TrimRight(line, "\r\n")
			env, decErr := event.Decode(raw)
			if decErr != nil {
				bad++
				fmt.Fprintf(p.out, "line %d: %v (not sent)\n", n, decErr)
			} else if err := p.produce(ctx, env); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", n, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(p.out, "published %d events to %s, rejected %d lines\n", p.sent.Load(), p.cfg.Topic, bad)
	if bad > 0 {
		return exitError{code: 2, err: fmt.Errorf("%d invalid lines were not sent", bad)}
	}
	return nil
}

// generate publishes cfg.Generate synthetic events, paced by cfg.Rate.
func (p *producer) generate(ctx context.Context) error {
	gen := eventgen.New(p.cfg.Seed)
	bar := newProgress(p.out, p.cfg.Progress, p.cfg.Generate, &p.sent)
	defer bar.stop()
	start := time.Now()
	// Events are generated in small chunks: with --apply-items a chunk's item changes
	// are committed (one round trip) before any of its events is published.
	chunk := 500
	if p.cfg.Rate > 0 {
		chunk = max(1, min(chunk, int(p.cfg.Rate/10)))
	}
	pending := make([]*event.Envelope, 0, chunk)
	for i := 0; i < p.cfg.Generate && ctx.Err() == nil && !p.failed.Load(); {
		pending = pending[:0]
		for len(pending) < chunk && i+len(pending) < p.cfg.Generate {
			env, err := gen.Next()
			if err != nil {
				return err
			}
			pending = append(pending, env)
		}
		if p.items != nil {
			if err := itemwriter.Apply(ctx, p.items, pending, itemwriter.HardDeleteQuarter); err != nil {
				return err
			}
		}
		for _, env := range pending {
			if p.cfg.Rate > 0 {
				due := start.Add(time.Duration(float64(i) / p.cfg.Rate * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
			}
			if err := p.produce(context.WithoutCancel(ctx), env); err != nil {
				return err
			}
			i++
		}
	}
	err := p.flush(context.WithoutCancel(ctx))
	bar.stop()
	elapsed := time.Since(start)
	fmt.Fprintf(p.out, "published %d events to %s in %s (%.0f events/s)\n", p.sent.Load(), p.cfg.Topic,
		elapsed.Round(time.Millisecond), float64(p.sent.Load())/elapsed.Seconds())
	if err != nil {
		return err
	}
	return ctx.Err()
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	done    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func newProgress(out io.Writer, mode string, total int, sent *atomic.Int64) *progress {
	p := &progress{done: make(chan struct{})}
	f, isFile := out.(*os.File)
	show := mode == "always" || (mode == "auto" && isFile && term.IsTerminal(int(f.Fd())))
	if !show || total <= 0 {
		return p
	}
	start := time.Now()
	draw := func() {
		n := sent.Load()
		width := 30
		filled := int(int64(width) * n / int64(total))
		rate := float64(n) / time.Since(start).Seconds()
		fmt.Fprintf(out, "\r[%s%s] %d/%d events  %.0f/s ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, total, rate)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw()
			case <-p.done:
				draw()
				fmt.Fprintln(out)
				return
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	p.stopped.Do(func() { close(p.done) })
	p.wg.Wait()
}
