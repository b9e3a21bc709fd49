package consumer_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/internal/itemwriter"
	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// indexSetup is an indexer test's topic, database (migrated) and index alias.
type indexSetup struct {
	*setup
	alias     string
	searchURL string
}

func newIndexSetup(t testing.TB, partitions int32) *indexSetup {
	t.Helper()
	s := &indexSetup{setup: newSetup(t, partitions), searchURL: infra.SearchURL(t)}
	s.alias = infra.NewIndexName(t)
	// the versioned index behind the alias goes too
	infra.DeleteIndexAfter(t, s.alias+"-v1")
	m, err := migrations.Open(s.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *indexSetup) startIndexer(t testing.TB, name, group string, extra ...string) *consumerProc {
	t.Helper()
	return s.startMode(t, "indexer", name, group, append([]string{
		"--elasticsearch-addresses", s.searchURL, "--elasticsearch-index", s.alias, "--elasticsearch-opensearch"}, extra...)...)
}

// applyToItems changes the items table the way the Atlas API does before it publishes
// each event. hardDelete decides, per deleted item, between a hard and a soft delete.
func (s *indexSetup) applyToItems(t testing.TB, envs []*event.Envelope, hardDelete func(id uuid.UUID) bool) {
	t.Helper()
	if err := itemwriter.Apply(context.Background(), s.pool, envs, hardDelete); err != nil {
		t.Fatal(err)
	}
}

// itemEvents keeps the item events of envs.
func itemEvents(envs []*event.Envelope) []*event.Envelope {
	var out []*event.Envelope
	for _, e := range envs {
		if e.Entity.Type == event.EntityItem {
			out = append(out, e)
		}
	}
	return out
}

// generateItems returns n item events from the generator (other events are dropped).
func generateItems(t testing.TB, seed uint64, n int) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for chunk := uint64(0); len(out) < n; chunk++ {
		out = append(out, itemEvents(generate(t, seed*1000+chunk, 4*n))...)
	}
	return out[:n]
}

// createdItems returns n ItemCreated events of distinct items.
func createdItems(t testing.TB, seed uint64, n int) []*event.Envelope {
	t.Helper()
	var out []*event.Envelope
	for _, e := range generateItems(t, seed, 5*n) {
		if e.EventType == event.ItemCreated && len(out) < n {
			out = append(out, e)
		}
	}
	if len(out) != n {
		t.Fatalf("generated only %d of %d ItemCreated events", len(out), n)
	}
	return out
}

// waitIndexEqualsTable waits until the index holds exactly the live items.
func (s *indexSetup) waitIndexEqualsTable(t testing.TB, timeout time.Duration, procs ...*consumerProc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	diff := ""
	for time.Now().Before(deadline) {
		if diff = infra.IndexDiff(t, s.pool, s.alias); diff == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	var logs strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&logs, "--- %s:\n%s\n", p.name, p.tail())
	}
	t.Fatalf("the index never matched the items table within %s: %s\n%s", timeout, diff, logs.String())
}

// proxy forwards TCP connections to target until it is switched off, which makes the
// server behind it unreachable without stopping it (other tests share it).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	off    bool
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.off {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = copyConn(up, c) }()
	_, _ = copyConn(c, up)
}

func copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// setOff cuts every connection and refuses new ones (true), or lets them through again.
func (p *proxy) setOff(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
	if off {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }
