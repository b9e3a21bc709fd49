package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// LagReader reads a consumer group's lag on its topic. The key names the AtlasConsumer
// the read is for, so a reader can tell which consumers use which connection.
type LagReader interface {
	ReadLag(ctx context.Context, key types.NamespacedName, conn kafkaconn.Config, group, topic string, startEarliest bool) (scaling.Lag, error)
	// Forget releases what the reader keeps for a consumer that is gone.
	Forget(key types.NamespacedName)
}

// KafkaLagReader reads lag with franz-go's kadm through one admin client per distinct
// connection (brokers, TLS, SASL), shared by every AtlasConsumer that uses it and closed
// when the last of them is forgotten or moves to another connection.
type KafkaLagReader struct {
	// Timeout bounds one lag read (default 10s).
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]*lagClient           // by connection fingerprint
	users   map[types.NamespacedName]string // consumer -> the fingerprint it uses
}

type lagClient struct {
	kgo   *kgo.Client
	adm   *kadm.Client
	users int
}

// ReadLag implements LagReader.
func (r *KafkaLagReader) ReadLag(ctx context.Context, key types.NamespacedName, conn kafkaconn.Config, group, topic string, startEarliest bool) (scaling.Lag, error) {
	adm, err := r.client(key, conn)
	if err != nil {
		return scaling.Lag{}, err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return scaling.ReadLag(ctx, adm, group, topic, startEarliest)
}

func (r *KafkaLagReader) client(key types.NamespacedName, conn kafkaconn.Config) (*kadm.Client, error) {
	fp := fingerprint(conn)
	r.mu.Lock()
	defer r.mu.Unlock()
	if used, ok := r.users[key]; ok && used != fp {
		r.release(key)
	}
	c, ok := r.clients[fp]
	if !ok {
		opts, err := conn.Opts()
		if err != nil {
			return nil, fmt.Errorf("kafka settings: %w", err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		c = &lagClient{kgo: cl, adm: kadm.NewClient(cl)}
		if r.clients == nil {
			r.clients, r.users = map[string]*lagClient{}, map[types.NamespacedName]string{}
		}
		r.clients[fp] = c
	}
	if _, ok := r.users[key]; !ok {
		c.users++
		r.users[key] = fp
	}
	return c.adm, nil
}

// release drops key's use of its client, closing the client when it was the last. r.mu is held.
func (r *KafkaLagReader) release(key types.NamespacedName) {
	fp, ok := r.users[key]
	if !ok {
		return
	}
	delete(r.users, key)
	if c := r.clients[fp]; c != nil {
		if c.users--; c.users <= 0 {
			c.kgo.Close()
			delete(r.clients, fp)
		}
	}
}

// Forget implements LagReader.
func (r *KafkaLagReader) Forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release(key)
}

// Clients returns how many Kafka clients the reader holds (one per distinct connection).
func (r *KafkaLagReader) Clients() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.clients)
}

// Close closes every client.
func (r *KafkaLagReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for fp, c := range r.clients {
		c.kgo.Close()
		delete(r.clients, fp)
	}
	clear(r.users)
}

func fingerprint(conn kafkaconn.Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %t %q %q %q", conn.Brokers, conn.ClientID, conn.TLS, conn.SASLMechanism, conn.SASLUsername, conn.SASLPassword)
	for _, b := range [][]byte{conn.TLSCAPEM, conn.TLSCertPEM, conn.TLSKeyPEM} {
		fmt.Fprintf(h, " %d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// kafkaConn is the operator's connection to a consumer's brokers, with the consumer's
// TLS and SASL settings.
func kafkaConn(ac *atlasv1alpha1.AtlasConsumer, secrets secretValues) kafkaconn.Config {
	k := ac.Spec.Kafka
	conn := kafkaconn.Config{Brokers: k.BootstrapServers, ClientID: "atlas-operator"}
	if tls := k.TLS; tls != nil {
		conn.TLS = true
		conn.TLSCAPEM = secrets.get(tls.CASecretRef)
		conn.TLSCertPEM = secrets.get(tls.CertSecretRef)
		conn.TLSKeyPEM = secrets.get(tls.KeySecretRef)
	}
	if sasl := k.SASL; sasl != nil {
		conn.SASLMechanism = string(sasl.Mechanism)
		conn.SASLUsername = string(secrets.get(sasl.UsernameSecretRef))
		conn.SASLPassword = string(secrets.get(sasl.PasswordSecretRef))
		if o := sasl.OAuthBearer; o != nil {
			conn.OAuth = kafkaconn.OAuth{Token: string(secrets.get(o.TokenSecretRef)), TokenURL: o.TokenURL,
				ClientID: string(secrets.get(o.ClientIDSecretRef)), ClientSecret: string(secrets.get(o.ClientSecretSecretRef)), Scopes: o.Scopes}
		}
	}
	return conn
}

// autoscaler keeps, per AtlasConsumer, what lag-driven scaling remembers between
// reconciles: the recommendations of the stabilization window, and which measurement of
// the poller it last decided on. The window's peaks also go to the status
// (status.scaleDownPeaks, with the latest recommendation in status.recommendedReplicas),
// and a leader that has no memory of a consumer yet (a new one, after a hand-over) starts
// from them, the latest recommendation counted as made when it takes over: it never
// scales down before the window has passed.
type autoscaler struct {
	poller *lagPoller
	now    func() time.Time

	mu     sync.Mutex
	states map[types.NamespacedName]*scaleState
}

type scaleState struct {
	// decided is the seq of the measurement the last decision used.
	decided uint64
	history []scaling.Recommendation
	// rates are the drain-time policy's measurements; ready and current are the ready and
	// wanted pods when the last fresh measurement was decided on (observed: there was one),
	// to tell an interval in which no pod started or stopped.
	rates          scaling.Rates
	ready, current int32
	observed       bool
}

// scaleResult is an autoscaling decision with the measurement it used.
type scaleResult struct {
	decision scaling.Decision
	// lag is the latest successful measurement (nil when the latest failed or none exists).
	lag *scaling.Lag
	// fresh says the measurement is new since the previous decision.
	fresh bool
	// rates are what the drain-time policy has measured (drainPolicy: it is the policy).
	rates       scaling.Rates
	drainPolicy bool
}

// policy is spec.autoscaling with the API defaults filled in.
func policy(as *atlasv1alpha1.AutoscalingSpec) (scaling.Policy, time.Duration) {
	p := scaling.Policy{
		MinReplicas:              1,
		MaxReplicas:              as.MaxReplicas,
		LagPerReplica:            as.LagPerReplica,
		ScaleDownStabilization:   5 * time.Minute,
		ExcludeStuckPartitions:   as.ExcludeStuckPartitions,
		LimitToPartitionsWithLag: as.LimitToPartitionsWithLag,
	}
	if as.MinReplicas != nil {
		p.MinReplicas = *as.MinReplicas
	}
	if as.ActivationLag != nil {
		p.ActivationLag = *as.ActivationLag
	}
	if as.TargetDrainTime != nil && as.TargetDrainTime.Duration > 0 {
		p.TargetDrainTime, p.LagPerReplica = as.TargetDrainTime.Duration, 0
	} else if p.LagPerReplica <= 0 {
		p.LagPerReplica = 1000
	}
	if as.ScaleDownStabilization != nil {
		p.ScaleDownStabilization = as.ScaleDownStabilization.Duration
	}
	poll := 30 * time.Second
	if as.PollInterval != nil && as.PollInterval.Duration > 0 {
		poll = as.PollInterval.Duration
	}
	return p, poll
}

// decide makes sure the consumer's lag is polled (never while it is suspended) and
// decides the replicas from the latest measurement; it does no I/O. ready is the number
// of ready, up-to-date pods.
func (a *autoscaler) decide(ac *atlasv1alpha1.AtlasConsumer, conn kafkaconn.Config, current, ready int32) scaleResult {
	key := types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name}
	pol, interval := policy(ac.Spec.Autoscaling)
	if ac.Spec.Suspend {
		a.poller.stop(key)
	} else {
		a.poller.ensure(key, pollTarget{conn: conn, fingerprint: fingerprint(conn), group: workload.GroupID(ac),
			topic: workload.Topic(ac), startEarliest: workload.StartEarliest(ac)}, interval)
	}
	m := a.poller.latest(key)

	a.mu.Lock()
	defer a.mu.Unlock()
	st, ok := a.states[key]
	if !ok {
		st = &scaleState{history: windowFromStatus(&ac.Status, a.now()), rates: ratesFromStatus(ac.Status.Drain)}
		if a.states == nil {
			a.states = map[types.NamespacedName]*scaleState{}
		}
		a.states[key] = st
	}
	fresh := m.seq != 0 && m.seq != st.decided
	if fresh && m.err == nil && m.previous != nil && pol.TargetDrainTime > 0 {
		iv := scaling.Interval{Previous: *m.previous, Current: m.lag, Ready: ready,
			Stable: st.observed && st.ready == ready && st.current == current && ready == current}
		if pol.ExcludeStuckPartitions {
			iv.Stuck = scaling.StuckPartitions(m.previous, m.lag)
		}
		st.rates = st.rates.Observe(iv)
	}
	if fresh {
		st.ready, st.current, st.observed = ready, current, true
	}
	in := scaling.Input{
		Now: a.now(), Current: current, Suspended: ac.Spec.Suspend, Policy: pol,
		Lag: m.lag, LagErr: m.err, Previous: m.previous, History: st.history,
		Rates: st.rates, Ready: ready,
	}
	in.AwaitingLag = m.seq == 0
	res := scaleResult{decision: scaling.Decide(in), fresh: fresh, rates: st.rates, drainPolicy: pol.TargetDrainTime > 0}
	st.decided = m.seq
	if !ac.Spec.Suspend {
		st.history = res.decision.History
	}
	if m.seq != 0 && m.err == nil {
		lag := m.lag
		res.lag = &lag
	}
	return res
}

// windowFromStatus is what a leader taking over knows of the stabilization window: the
// peaks of the status, and the latest recommendation (status.recommendedReplicas) as made
// now, since it was being made until the hand-over. A peak dated after now (a skewed clock,
// an edited status) counts as made now, so it cannot hold a scale-down back for ever.
func windowFromStatus(st *atlasv1alpha1.AtlasConsumerStatus, now time.Time) []scaling.Recommendation {
	var out []scaling.Recommendation
	for _, p := range st.ScaleDownPeaks {
		at := p.Time.Time
		if at.After(now) {
			at = now
		}
		out = append(out, scaling.Recommendation{At: at, Replicas: p.Replicas})
	}
	if st.RecommendedReplicas != nil {
		out = append(out, scaling.Recommendation{At: now, Replicas: *st.RecommendedReplicas})
	}
	return out
}

// ratesFromStatus is what a leader taking over knows of the drain-time rates: those of
// status.drain, as the previous leader last wrote them.
func ratesFromStatus(d *atlasv1alpha1.DrainStatus) scaling.Rates {
	if d == nil {
		return scaling.Rates{}
	}
	r := scaling.Rates{Arrival: float64(d.ArrivalRate), ArrivalKnown: true}
	if d.PodRate != nil && *d.PodRate > 0 {
		r.PodRate, r.Samples = float64(*d.PodRate), d.BusyIntervals
	}
	return r
}

// drainStatus is status.drain for the rates and the plan made on them.
func drainStatus(r scaling.Rates, plan *scaling.DrainPlan) *atlasv1alpha1.DrainStatus {
	d := &atlasv1alpha1.DrainStatus{ArrivalRate: int64(math.Round(r.Arrival))}
	if r.Samples > 0 {
		pod := int64(math.Round(r.PodRate))
		d.PodRate, d.BusyIntervals = &pod, r.Samples
	}
	if plan != nil && !plan.Fallback && plan.Expected >= 0 {
		d.ExpectedDrainTime = &metav1.Duration{Duration: plan.Expected.Round(time.Second)}
	}
	return d
}

// peaksStatus is status.scaleDownPeaks for the decision: its times rounded up to the
// second the API keeps, so a window read back never ends early and an unchanged
// decision writes an unchanged status.
func peaksStatus(d scaling.Decision) []atlasv1alpha1.ScaleRecommendation {
	var out []atlasv1alpha1.ScaleRecommendation
	for _, p := range d.Peaks() {
		at := p.At.Truncate(time.Second)
		if at.Before(p.At) {
			at = at.Add(time.Second)
		}
		out = append(out, atlasv1alpha1.ScaleRecommendation{Replicas: p.Replicas, Time: metav1.NewTime(at)})
	}
	return out
}

// forget drops what is kept for a consumer that is gone or no longer autoscaled.
func (a *autoscaler) forget(key types.NamespacedName) {
	a.mu.Lock()
	_, ok := a.states[key]
	delete(a.states, key)
	a.mu.Unlock()
	if ok {
		a.poller.stop(key)
	}
}
