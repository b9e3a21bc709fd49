package controllers

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// The condition metric holds exactly the conditions of the latest status: a changed one
// replaces its old series, and a forgotten consumer leaves none.
func TestConditionMetricFollowsTheStatus(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	key, other := types.NamespacedName{Namespace: "ns", Name: "audit"}, types.NamespacedName{Namespace: "ns", Name: "indexer"}
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	want := func(lines ...string) {
		t.Helper()
		exp := "# HELP atlas_operator_consumer_condition " + "1 for each condition an AtlasConsumer's status holds, with its type, status and reason (the alerts read Ready, ScalingActive and ScalingLimited here).\n" +
			"# TYPE atlas_operator_consumer_condition gauge\n"
		for _, l := range lines {
			exp += "atlas_operator_consumer_condition" + l + " 1\n"
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "atlas_operator_consumer_condition"); err != nil {
			t.Fatal(err)
		}
	}

	status := func(conds ...metav1.Condition) *atlasv1alpha1.AtlasConsumerStatus {
		return &atlasv1alpha1.AtlasConsumerStatus{DesiredReplicas: 2, ReadyReplicas: 1, Conditions: conds}
	}
	m.observeStatus(key, status(cond("Ready", "False", "RollingOut"), cond("Stalled", "False", "RollingOut")))
	m.observeStatus(other, status(cond("Ready", "True", "Available")))
	if v := testutil.ToFloat64(m.ready.WithLabelValues("ns", "audit")); v != 1 {
		t.Fatalf("ready replicas %v, want 1", v)
	}
	want(`{name="audit",namespace="ns",reason="RollingOut",status="False",type="Ready"}`,
		`{name="audit",namespace="ns",reason="RollingOut",status="False",type="Stalled"}`,
		`{name="indexer",namespace="ns",reason="Available",status="True",type="Ready"}`)

	m.observeStatus(key, status(cond("Ready", "True", "Available"), cond("Stalled", "False", "RollingOut")))
	want(`{name="audit",namespace="ns",reason="Available",status="True",type="Ready"}`,
		`{name="audit",namespace="ns",reason="RollingOut",status="False",type="Stalled"}`,
		`{name="indexer",namespace="ns",reason="Available",status="True",type="Ready"}`)

	m.forget(key)
	want(`{name="indexer",namespace="ns",reason="Available",status="True",type="Ready"}`)
}
