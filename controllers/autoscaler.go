package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"k8s.io/apimachinery/pkg/types"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// LagReader reads a consumer group's lag on its topic. The key names the AtlasConsumer
// the connection belongs to, so a reader may keep one connection per consumer.
type LagReader interface {
	ReadLag(ctx context.Context, key types.NamespacedName, conn kafkaconn.Config, group, topic string, startEarliest bool) (scaling.Lag, error)
	// Forget closes what the reader keeps for a consumer that is gone.
	Forget(key types.NamespacedName)
}

// KafkaLagReader reads lag with franz-go's kadm, keeping one admin client per
// AtlasConsumer and replacing it when the connection settings change.
type KafkaLagReader struct {
	// Timeout bounds one lag read (default 10s).
	Timeout time.Duration

	mu      sync.Mutex
	clients map[types.NamespacedName]*lagClient
}

type lagClient struct {
	fingerprint string
	kgo         *kgo.Client
	adm         *kadm.Client
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
	if c, ok := r.clients[key]; ok {
		if c.fingerprint == fp {
			return c.adm, nil
		}
		c.kgo.Close()
		delete(r.clients, key)
	}
	opts, err := conn.Opts()
	if err != nil {
		return nil, fmt.Errorf("kafka settings: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if r.clients == nil {
		r.clients = map[types.NamespacedName]*lagClient{}
	}
	r.clients[key] = &lagClient{fingerprint: fp, kgo: cl, adm: kadm.NewClient(cl)}
	return r.clients[key].adm, nil
}

// Forget implements LagReader.
func (r *KafkaLagReader) Forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[key]; ok {
		c.kgo.Close()
		delete(r.clients, key)
	}
}

// Close closes every client.
func (r *KafkaLagReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, c := range r.clients {
		c.kgo.Close()
		delete(r.clients, key)
	}
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
		conn.SASLUsername = string(secrets.get(&sasl.UsernameSecretRef))
		conn.SASLPassword = string(secrets.get(&sasl.PasswordSecretRef))
	}
	return conn
}

// autoscaler keeps, per AtlasConsumer, what lag-driven scaling remembers between
// reconciles: the last two measurements and the recommendations of the stabilization
// window. Like the HorizontalPodAutoscaler it keeps them in memory; a new leader starts
// with the current replicas and an empty window.
type autoscaler struct {
	reader LagReader
	now    func() time.Time

	mu     sync.Mutex
	states map[types.NamespacedName]*scaleState
}

type scaleState struct {
	polledAt time.Time
	lag      scaling.Lag
	lagErr   error
	previous *scaling.Lag
	history  []scaling.Recommendation
}

// scaleResult is an autoscaling decision with the measurement it used.
type scaleResult struct {
	decision scaling.Decision
	// lag is the latest measurement (nil when it failed or was never taken).
	lag *scaling.Lag
	// fresh says the lag was read in this reconcile.
	fresh bool
	// requeueAfter is when the next measurement is due.
	requeueAfter time.Duration
}

// policy is spec.autoscaling with the API defaults filled in.
func policy(as *atlasv1alpha1.AutoscalingSpec) (scaling.Policy, time.Duration) {
	p := scaling.Policy{
		MinReplicas:            1,
		MaxReplicas:            as.MaxReplicas,
		LagPerReplica:          as.LagPerReplica,
		ScaleDownStabilization: 5 * time.Minute,
		ExcludeStuckPartitions: as.ExcludeStuckPartitions,
	}
	if as.MinReplicas != nil {
		p.MinReplicas = *as.MinReplicas
	}
	if p.LagPerReplica <= 0 {
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

// decide reads the lag when a measurement is due and decides the replicas.
func (a *autoscaler) decide(ctx context.Context, ac *atlasv1alpha1.AtlasConsumer, conn kafkaconn.Config, current int32) scaleResult {
	key := types.NamespacedName{Namespace: ac.Namespace, Name: ac.Name}
	pol, poll := policy(ac.Spec.Autoscaling)
	now := a.now()

	a.mu.Lock()
	st, ok := a.states[key]
	if !ok {
		st = &scaleState{}
		if a.states == nil {
			a.states = map[types.NamespacedName]*scaleState{}
		}
		a.states[key] = st
	}
	due := !ac.Spec.Suspend && (st.polledAt.IsZero() || now.Sub(st.polledAt) >= poll)
	a.mu.Unlock()

	res := scaleResult{}
	if due {
		lag, err := a.reader.ReadLag(ctx, key, conn, workload.GroupID(ac), workload.Topic(ac), workload.StartEarliest(ac))
		a.mu.Lock()
		if err == nil {
			if st.lagErr == nil && !st.polledAt.IsZero() {
				prev := st.lag
				st.previous = &prev
			} else {
				st.previous = nil
			}
			st.lag = lag
		}
		st.lagErr = err
		st.polledAt = now
		a.mu.Unlock()
		res.fresh = true
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	in := scaling.Input{
		Now: now, Current: current, Suspended: ac.Spec.Suspend, Policy: pol,
		Lag: st.lag, LagErr: st.lagErr, Previous: st.previous, History: st.history,
	}
	res.decision = scaling.Decide(in)
	if !ac.Spec.Suspend {
		st.history = res.decision.History
	}
	if st.lagErr == nil && !st.polledAt.IsZero() {
		lag := st.lag
		res.lag = &lag
	}
	res.requeueAfter = poll - now.Sub(st.polledAt)
	if ac.Spec.Suspend || res.requeueAfter <= 0 {
		res.requeueAfter = poll
	}
	return res
}

// forget drops what is kept for a consumer that is gone or no longer autoscaled.
func (a *autoscaler) forget(key types.NamespacedName) {
	a.mu.Lock()
	_, ok := a.states[key]
	delete(a.states, key)
	a.mu.Unlock()
	if ok {
		a.reader.Forget(key)
	}
}
