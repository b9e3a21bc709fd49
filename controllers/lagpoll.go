package controllers

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
)

// lagPoller measures each autoscaled AtlasConsumer's lag at its poll interval, in a
// goroutine of its own per consumer (KEDA's scale loops work the same way), off the
// reconcile path: a broker that does not answer holds that consumer's goroutine for up to
// the lag timeout, never a reconcile worker. After each measurement it asks for a
// reconcile through a channel the controller watches; Reconcile reads the latest
// measurement from memory and talks only to the API server. It is a manager runnable
// that needs leader election: only the leader polls.
type lagPoller struct {
	reader LagReader
	now    func() time.Time
	wake   chan event.GenericEvent

	mu    sync.Mutex
	ctx   context.Context // the leader's, once started
	polls map[types.NamespacedName]*lagPoll
}

// pollTarget is what a poll measures: a group's lag on a topic through a connection.
type pollTarget struct {
	conn          kafkaconn.Config
	fingerprint   string
	group, topic  string
	startEarliest bool
}

func (t pollTarget) same(o pollTarget) bool {
	return t.fingerprint == o.fingerprint && t.group == o.group && t.topic == o.topic && t.startEarliest == o.startEarliest
}

// lagPoll is one consumer's polling goroutine and what it measured.
type lagPoll struct {
	target   pollTarget
	interval time.Duration
	cancel   context.CancelFunc // nil until the poller started it
	m        measurement
}

// measurement is the latest outcome of a consumer's lag reads.
type measurement struct {
	// seq counts the measurements (0: none yet), so a reconcile tells a new one.
	seq uint64
	at  time.Time
	// lag is the latest successful measurement; err is set when the latest one failed.
	lag      scaling.Lag
	err      error
	measured bool
	// previous is the successful measurement before lag, when the latest two both succeeded.
	previous *scaling.Lag
}

func newLagPoller(reader LagReader, now func() time.Time) *lagPoller {
	return &lagPoller{reader: reader, now: now, wake: make(chan event.GenericEvent, 1024), polls: map[types.NamespacedName]*lagPoll{}}
}

// Start implements manager.Runnable: it runs the polls registered so far, and those
// registered later, until ctx ends.
func (p *lagPoller) Start(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	for key, poll := range p.polls {
		p.launch(key, poll)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, poll := range p.polls {
		if poll.cancel != nil {
			poll.cancel()
		}
		delete(p.polls, key)
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (p *lagPoller) NeedLeaderElection() bool { return true }

// ensure makes a poll of target every interval run for key: it starts one, restarts it
// with a new interval, or starts afresh (forgetting the old measurements) when what it
// measures changed.
func (p *lagPoller) ensure(key types.NamespacedName, target pollTarget, interval time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	poll, ok := p.polls[key]
	if ok && poll.target.same(target) && poll.interval == interval {
		return // (a poll's target and interval never change: its goroutine reads them unlocked)
	}
	next := &lagPoll{target: target, interval: interval}
	if ok {
		if poll.cancel != nil {
			poll.cancel()
		}
		if poll.target.same(target) {
			next.m = poll.m
		}
	}
	p.polls[key] = next
	if p.ctx != nil {
		p.launch(key, next)
	}
}

// launch starts poll's goroutine. p.mu is held.
func (p *lagPoller) launch(key types.NamespacedName, poll *lagPoll) {
	ctx, cancel := context.WithCancel(p.ctx)
	poll.cancel = cancel
	go p.run(ctx, key, poll)
}

// stop ends key's poll and lets the reader close what it kept for it.
func (p *lagPoller) stop(key types.NamespacedName) {
	p.mu.Lock()
	poll, ok := p.polls[key]
	delete(p.polls, key)
	p.mu.Unlock()
	if ok && poll.cancel != nil {
		poll.cancel()
	}
	p.reader.Forget(key)
}

// latest returns key's latest measurement (seq 0 when there is none).
func (p *lagPoller) latest(key types.NamespacedName) measurement {
	p.mu.Lock()
	defer p.mu.Unlock()
	if poll, ok := p.polls[key]; ok {
		return poll.m
	}
	return measurement{}
}

func (p *lagPoller) run(ctx context.Context, key types.NamespacedName, poll *lagPoll) {
	wake := event.GenericEvent{Object: &atlasv1alpha1.AtlasConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	for {
		t := poll.target
		lag, err := p.reader.ReadLag(ctx, key, t.conn, t.group, t.topic, t.startEarliest)
		if ctx.Err() != nil {
			return
		}
		p.record(poll, lag, err)
		select {
		case p.wake <- wake:
		case <-ctx.Done():
			return
		}
		timer := time.NewTimer(poll.interval)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// record keeps a measurement of poll.
func (p *lagPoller) record(poll *lagPoll, lag scaling.Lag, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := &poll.m
	m.seq++
	m.at = p.now()
	if err == nil {
		if m.measured && m.err == nil {
			prev := m.lag
			m.previous = &prev
		} else {
			m.previous = nil
		}
		m.lag, m.measured = lag, true
	}
	m.err = err
}
