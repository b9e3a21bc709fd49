package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// Metrics are the operator's own Prometheus metrics (controller-runtime adds the
// reconcile and work-queue ones).
type Metrics struct {
	lag        *prometheus.GaugeVec
	desired    *prometheus.GaugeVec
	lagErrors  *prometheus.CounterVec
	scaleTotal *prometheus.CounterVec
	conditions *prometheus.GaugeVec
	ready      *prometheus.GaugeVec

	mu        sync.Mutex
	published map[types.NamespacedName]map[[3]string]bool // condition label values set, per AtlasConsumer
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"namespace", "name"}
	m := &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_operator_consumer_lag",
			Help: "Records not yet consumed by an autoscaled AtlasConsumer's group, as last measured.",
		}, labels),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_operator_consumer_desired_replicas",
			Help: "Consumer pods the operator wants for an AtlasConsumer.",
		}, labels),
		lagErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_operator_lag_read_errors_total",
			Help: "Failed reads of a consumer group's lag.",
		}, labels),
		scaleTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atlas_operator_scale_events_total",
			Help: "Replica count changes made by the operator, by direction (up or down).",
		}, append(labels, "direction")),
		conditions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atlas_operator_consumer_condition",
			Help: "1 for each condition an AtlasConsumer's status holds, with its type, status and reason (the alerts read Ready, ScalingActive and ScalingLimited here).",
		}, append(labels, "type", "status", "reason")),
	}
	m.ready = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "atlas_operator_consumer_ready_replicas",
		Help: "Ready consumer pods of an AtlasConsumer, as its status last said.",
	}, labels)
	for _, c := range []prometheus.Collector{m.lag, m.desired, m.lagErrors, m.scaleTotal, m.conditions, m.ready} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) forget(key types.NamespacedName) {
	if m == nil {
		return
	}
	m.lag.DeleteLabelValues(key.Namespace, key.Name)
	m.desired.DeleteLabelValues(key.Namespace, key.Name)
	m.ready.DeleteLabelValues(key.Namespace, key.Name)
	m.lagErrors.DeleteLabelValues(key.Namespace, key.Name)
	m.scaleTotal.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
	m.conditions.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
	m.mu.Lock()
	delete(m.published, key)
	m.mu.Unlock()
}

// observeStatus publishes the status the operator holds for an AtlasConsumer: desired and
// ready pods, and its conditions, removing the ones it published before that no longer hold. (Deleting
// all first would let a scrape in between miss a condition, and an alert waiting on it
// for minutes would start over.)
func (m *Metrics) observeStatus(key types.NamespacedName, st *atlasv1alpha1.AtlasConsumerStatus) {
	if m == nil {
		return
	}
	m.desired.WithLabelValues(key.Namespace, key.Name).Set(float64(st.DesiredReplicas))
	m.ready.WithLabelValues(key.Namespace, key.Name).Set(float64(st.ReadyReplicas))
	conds := st.Conditions
	m.mu.Lock()
	defer m.mu.Unlock()
	now := make(map[[3]string]bool, len(conds))
	for _, c := range conds {
		lv := [3]string{c.Type, string(c.Status), c.Reason}
		now[lv] = true
		m.conditions.WithLabelValues(key.Namespace, key.Name, lv[0], lv[1], lv[2]).Set(1)
	}
	for lv := range m.published[key] {
		if !now[lv] {
			m.conditions.DeleteLabelValues(key.Namespace, key.Name, lv[0], lv[1], lv[2])
		}
	}
	if m.published == nil {
		m.published = map[types.NamespacedName]map[[3]string]bool{}
	}
	m.published[key] = now
}

func (m *Metrics) setDesired(key types.NamespacedName, replicas int32) {
	if m != nil {
		m.desired.WithLabelValues(key.Namespace, key.Name).Set(float64(replicas))
	}
}

func (m *Metrics) observeScale(key types.NamespacedName, res scaleResult) {
	if m == nil {
		return
	}
	m.setDesired(key, res.decision.Desired)
	switch {
	case res.fresh && res.lag == nil:
		m.lagErrors.WithLabelValues(key.Namespace, key.Name).Inc()
	case res.lag != nil:
		m.lag.WithLabelValues(key.Namespace, key.Name).Set(float64(res.lag.Total))
	}
}

func (m *Metrics) countScale(key types.NamespacedName, direction string) {
	if m != nil {
		m.scaleTotal.WithLabelValues(key.Namespace, key.Name, direction).Inc()
	}
}
