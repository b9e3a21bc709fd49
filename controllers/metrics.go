package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// Metrics are the operator's own Prometheus metrics (controller-runtime adds the
// reconcile and work-queue ones).
type Metrics struct {
	lag        *prometheus.GaugeVec
	desired    *prometheus.GaugeVec
	lagErrors  *prometheus.CounterVec
	scaleTotal *prometheus.CounterVec
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
	}
	for _, c := range []prometheus.Collector{m.lag, m.desired, m.lagErrors, m.scaleTotal} {
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
	m.lagErrors.DeleteLabelValues(key.Namespace, key.Name)
	m.scaleTotal.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "name": key.Name})
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
