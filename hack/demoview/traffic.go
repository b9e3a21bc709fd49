package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// traffic publishes a burst of generated events every cfg.burstEvery (one with --once),
// with `atlas produce --generate N --apply-items`: each item change is written to the
// items table before its event is published, as the Atlas API does.
type traffic struct {
	cfg    config
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	started int       // bursts started
	active  bool      // a burst is being published
	ended   time.Time // when the last burst ended
	next    time.Time // when the next burst starts
	err     error     // the last burst's failure
}

func startTraffic(ctx context.Context, cfg config) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	t := &traffic{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go t.loop(ctx)
	return t
}

func (t *traffic) loop(ctx context.Context) {
	defer close(t.done)
	for ctx.Err() == nil {
		begin := time.Now()
		t.mu.Lock()
		t.started++
		t.active = true
		t.mu.Unlock()
		err := t.burst(ctx)
		t.mu.Lock()
		t.active, t.err, t.ended = false, err, time.Now()
		t.next = begin.Add(t.cfg.burstEvery)
		t.mu.Unlock()
		if t.cfg.once {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(t.next)):
		}
	}
}

// burst runs one `atlas produce`; cancelling ctx interrupts it as Ctrl-C would (it
// finishes the chunk whose item changes it already wrote).
func (t *traffic) burst(ctx context.Context) error {
	log, err := os.OpenFile(t.cfg.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, t.cfg.atlas, "produce", "--kafka-brokers", t.cfg.brokers, "--topic", t.cfg.topic,
		"--generate", fmt.Sprint(t.cfg.burstSize), "--apply-items", "--progress", "never")
	cmd.Env = append(os.Environ(), "ATLAS_POSTGRES_DSN="+t.cfg.postgres)
	cmd.Stdout, cmd.Stderr = log, log
	// its own process group: a Ctrl-C reaches this program, which stops the burst itself
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("atlas produce: %w (see %s)", err, t.cfg.logFile)
	}
	return nil
}

// stop ends the bursts and waits for a running one to stop.
func (t *traffic) stop() {
	t.cancel()
	<-t.done
}

// finished returns when the last burst ended (zero while none has) and whether it failed.
func (t *traffic) finished() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active {
		return time.Time{}, false
	}
	return t.ended, t.err != nil
}

func (t *traffic) bursts() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active {
		return t.started - 1
	}
	return t.started
}

// status says what the traffic does now, for the screen.
func (t *traffic) status() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.active:
		return fmt.Sprintf("burst %d: publishing %s events", t.started, thousands(int64(t.cfg.burstSize)))
	case t.err != nil:
		return fmt.Sprintf("burst %d failed: %v", t.started, t.err)
	case t.cfg.once:
		return "one burst published; waiting for the indexer to scale back down"
	default:
		return fmt.Sprintf("burst %d published; the next in %s", t.started, time.Until(t.next).Round(time.Second))
	}
}
