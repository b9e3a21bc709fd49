package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
)

func deployment(gen, observed int64, replicas, updated, ready int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	d.Generation = gen
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated,
		ReadyReplicas: ready, AvailableReplicas: ready, Conditions: conds}
	return d
}

// TestComputeStatus: the health conditions for each state a consumer Deployment can be
// in, always consistent with their kstatus mirrors.
func TestComputeStatus(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		suspend                      bool
		desired                      int32
		dep                          *appsv1.Deployment
		ready, progressing, degraded bool
		reason                       string
	}{
		{"no Deployment yet", false, 2, nil, false, true, false, ReasonDeploymentNotFound},
		{"controller has not seen the new generation", false, 2, deployment(3, 2, 2, 2, 2), false, true, false, ReasonRollingOut},
		{"pods rolling", false, 2, deployment(3, 3, 3, 1, 2), false, true, false, ReasonRollingOut},
		{"all ready", false, 2, deployment(3, 3, 2, 2, 2), true, false, false, ReasonAvailable},
		{"scaled to zero", false, 0, deployment(1, 1, 0, 0, 0), true, false, false, ReasonScaledToZero},
		{"suspended", true, 0, deployment(1, 1, 0, 0, 0), true, false, false, ReasonSuspended},
		{"suspended, pods still stopping", true, 0, deployment(2, 2, 2, 0, 2), false, true, false, ReasonRollingOut},
		{"progress deadline exceeded", false, 2, deployment(3, 3, 3, 1, 1, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}), false, false, true, ReasonRolloutFailed},
		{"pods cannot be created", false, 2, deployment(3, 3, 0, 0, 0, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "quota"}), false, false, true, ReasonRolloutFailed},
	} {
		ac := &atlasv1alpha1.AtlasConsumer{}
		ac.Generation = 7
		ac.Spec.Suspend = tc.suspend
		st := computeStatus(ac, observed{desired: tc.desired, deployment: tc.dep})
		if st.ObservedGeneration != 7 || st.DesiredReplicas != tc.desired {
			t.Errorf("%s: observedGeneration %d desired %d", tc.name, st.ObservedGeneration, st.DesiredReplicas)
		}
		check := func(typ string, want bool) {
			c := meta.FindStatusCondition(st.Conditions, typ)
			if c == nil || (c.Status == "True") != want || c.Reason != tc.reason || c.ObservedGeneration != 7 {
				t.Errorf("%s: %s = %+v, want %t/%s", tc.name, typ, c, want, tc.reason)
			}
		}
		check(atlasv1alpha1.ConditionReady, tc.ready)
		check(atlasv1alpha1.ConditionProgressing, tc.progressing)
		check(atlasv1alpha1.ConditionReconciling, tc.progressing)
		check(atlasv1alpha1.ConditionDegraded, tc.degraded)
		check(atlasv1alpha1.ConditionStalled, tc.degraded)
		if c := meta.FindStatusCondition(st.Conditions, atlasv1alpha1.ConditionScalingActive); c == nil || c.Reason != ReasonAutoscalingOff {
			t.Errorf("%s: ScalingActive = %+v without autoscaling", tc.name, c)
		}
	}
}

// TestConditionTimesMoveOnlyWithStatus: a reconcile that changes nothing keeps every
// lastTransitionTime, so the status write is skipped.
func TestConditionTimesMoveOnlyWithStatus(t *testing.T) {
	ac := &atlasv1alpha1.AtlasConsumer{}
	ac.Generation = 1
	obs := observed{desired: 1, deployment: deployment(1, 1, 1, 1, 1)}
	ac.Status = computeStatus(ac, obs)
	time.Sleep(1100 * time.Millisecond)
	again := computeStatus(ac, obs)
	for i := range again.Conditions {
		if !again.Conditions[i].LastTransitionTime.Equal(&ac.Status.Conditions[i].LastTransitionTime) {
			t.Errorf("%s: transition time moved without a change", again.Conditions[i].Type)
		}
	}
}

func TestLagStatusListsTheLaggiest(t *testing.T) {
	lag := scaling.Lag{Total: 21, MeasuredAt: time.Unix(1000, 5e8)}
	for p, l := range []int64{0, 5, 1, 7, 0, 2, 3, 3} {
		lag.Partitions = append(lag.Partitions, scaling.PartitionLag{Partition: int32(p), Lag: l})
	}
	ls := lagStatus(lag, []int32{3})
	if ls.Total != 21 || ls.Partitions != 8 || ls.LaggingPartitions != 6 || ls.Max != 7 || len(ls.Top) != 5 {
		t.Fatalf("lag status = %+v", ls)
	}
	want := []int32{3, 1, 6, 7, 5}
	for i, p := range ls.Top {
		if p.Partition != want[i] {
			t.Fatalf("top = %+v, want partitions %v", ls.Top, want)
		}
	}
	if ls.MeasuredAt.Unix() != 1000 || ls.MeasuredAt.Nanosecond() != 0 || len(ls.ExcludedPartitions) != 1 {
		t.Fatalf("measuredAt %v excluded %v", ls.MeasuredAt, ls.ExcludedPartitions)
	}
}

// A steady lag keeps the status.lag it had (no write at every poll); any changed figure
// replaces it, with its new measuredAt.
func TestNextLagStatusChangesOnlyWithTheFigures(t *testing.T) {
	measure := func(at int64, lags ...int64) *atlasv1alpha1.LagStatus {
		lag := scaling.Lag{MeasuredAt: time.Unix(at, 0)}
		for p, l := range lags {
			lag.Total += l
			lag.Partitions = append(lag.Partitions, scaling.PartitionLag{Partition: int32(p), Lag: l})
		}
		return lagStatus(lag, nil)
	}
	first := measure(1000, 0, 4, 1)
	for _, tc := range []struct {
		name     string
		old, now *atlasv1alpha1.LagStatus
		keep     bool
	}{
		{"first measurement", nil, first, false},
		{"same figures later", first, measure(1030, 0, 4, 1), true},
		{"same total elsewhere", first, measure(1030, 4, 0, 1), false},
		{"total changed", first, measure(1030, 0, 4, 2), false},
		{"a partition more", first, measure(1030, 0, 4, 1, 0), false},
		{"excluded partitions changed", first, lagStatus(scaling.Lag{Total: 5, MeasuredAt: time.Unix(1030, 0),
			Partitions: []scaling.PartitionLag{{Partition: 0}, {Partition: 1, Lag: 4}, {Partition: 2, Lag: 1}}}, []int32{1}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextLagStatus(tc.old, tc.now)
			if tc.keep && got != tc.old {
				t.Fatalf("replaced %+v with %+v", tc.old, got)
			}
			if !tc.keep && got != tc.now {
				t.Fatalf("kept %+v instead of %+v", tc.old, tc.now)
			}
		})
	}
}
