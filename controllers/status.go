package controllers

import (
	"fmt"
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
)

// Reasons of the AtlasConsumer conditions.
const (
	ReasonAvailable          = "Available"
	ReasonSuspended          = "Suspended"
	ReasonScaledToZero       = "ScaledToZero"
	ReasonRollingOut         = "RollingOut"
	ReasonNameConflict       = "NameConflict"
	ReasonInvalidReference   = "InvalidReference"
	ReasonRolloutFailed      = "RolloutFailed"
	ReasonPaused             = "PausedByAnnotation"
	ReasonAutoscalingOff     = "AutoscalingDisabled"
	ReasonDeploymentNotFound = "DeploymentNotFound"
	ReasonApplyFailed        = "ApplyFailed"
)

// setCondition sets a condition; its transition time changes only with its status.
func setCondition(st *atlasv1alpha1.AtlasConsumerStatus, generation int64, typ string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}

// setHealth sets Ready, Progressing, Degraded and their kstatus mirrors Reconciling and
// Stalled consistently: ready, progressing or degraded.
func setHealth(st *atlasv1alpha1.AtlasConsumerStatus, gen int64, ready, progressing, degraded bool, reason, msg string) {
	setCondition(st, gen, atlasv1alpha1.ConditionReady, ready, reason, msg)
	setCondition(st, gen, atlasv1alpha1.ConditionProgressing, progressing, reason, msg)
	setCondition(st, gen, atlasv1alpha1.ConditionReconciling, progressing, reason, msg)
	setCondition(st, gen, atlasv1alpha1.ConditionDegraded, degraded, reason, msg)
	setCondition(st, gen, atlasv1alpha1.ConditionStalled, degraded, reason, msg)
}

// stalledStatus is the status when the operator cannot go on without the user (a name
// conflict, a missing Secret): nothing was changed.
func stalledStatus(ac *atlasv1alpha1.AtlasConsumer, reason, msg string) atlasv1alpha1.AtlasConsumerStatus {
	st := *ac.Status.DeepCopy()
	st.ObservedGeneration = ac.Generation
	st.GroupID = workload.GroupID(ac)
	st.Selector = workload.Selector(ac)
	meta.RemoveStatusCondition(&st.Conditions, atlasv1alpha1.ConditionReconciliationPaused)
	setHealth(&st, ac.Generation, false, false, true, reason, msg)
	return st
}

// applyFailedStatus reports an object the API server refused; the operator retries, so
// the consumer is Degraded but not Stalled.
func applyFailedStatus(ac *atlasv1alpha1.AtlasConsumer, err error) atlasv1alpha1.AtlasConsumerStatus {
	st := *ac.Status.DeepCopy()
	st.ObservedGeneration = ac.Generation
	st.GroupID = workload.GroupID(ac)
	st.Selector = workload.Selector(ac)
	meta.RemoveStatusCondition(&st.Conditions, atlasv1alpha1.ConditionReconciliationPaused)
	msg := "retrying: " + err.Error()
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionReady, false, ReasonApplyFailed, msg)
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionProgressing, true, ReasonApplyFailed, msg)
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionReconciling, true, ReasonApplyFailed, msg)
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionDegraded, true, ReasonApplyFailed, msg)
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionStalled, false, ReasonApplyFailed, msg)
	return st
}

// pausedStatus marks the consumer paused and leaves the rest as it was.
func pausedStatus(ac *atlasv1alpha1.AtlasConsumer) atlasv1alpha1.AtlasConsumerStatus {
	st := *ac.Status.DeepCopy()
	setCondition(&st, ac.Generation, atlasv1alpha1.ConditionReconciliationPaused, true, ReasonPaused,
		fmt.Sprintf("the annotation %s=true stops reconciliation; remove it to resume", atlasv1alpha1.PauseReconciliationAnnotation))
	return st
}

// observed is what a reconcile did and saw, from which the status follows.
type observed struct {
	desired    int32
	deployment *appsv1.Deployment
	// scale is the autoscaling outcome; nil without autoscaling.
	scale *scaleResult
	// scaledAt is set when this reconcile changed the replica count.
	scaledAt *metav1.Time
}

// computeStatus derives the status from the Deployment as applied and the scaling
// decision.
func computeStatus(ac *atlasv1alpha1.AtlasConsumer, obs observed) atlasv1alpha1.AtlasConsumerStatus {
	gen := ac.Generation
	st := *ac.Status.DeepCopy()
	st.ObservedGeneration = gen
	st.GroupID = workload.GroupID(ac)
	st.Selector = workload.Selector(ac)
	st.DesiredReplicas = obs.desired
	if obs.scaledAt != nil {
		st.LastScaleTime = obs.scaledAt
	}
	meta.RemoveStatusCondition(&st.Conditions, atlasv1alpha1.ConditionReconciliationPaused)

	dep := obs.deployment
	st.Replicas, st.ReadyReplicas = 0, 0
	if dep != nil {
		st.Replicas = dep.Status.Replicas
		st.ReadyReplicas = dep.Status.ReadyReplicas
	}
	setDeploymentHealth(&st, gen, ac, obs.desired, dep)
	setScaling(&st, gen, obs.scale)
	return st
}

func setDeploymentHealth(st *atlasv1alpha1.AtlasConsumerStatus, gen int64, ac *atlasv1alpha1.AtlasConsumer, desired int32, dep *appsv1.Deployment) {
	if dep == nil {
		setHealth(st, gen, false, true, false, ReasonDeploymentNotFound, "the consumer Deployment does not exist yet")
		return
	}
	if failed, msg := rolloutFailed(dep); failed {
		setHealth(st, gen, false, false, true, ReasonRolloutFailed, msg)
		return
	}
	s := dep.Status
	settled := s.ObservedGeneration >= dep.Generation &&
		s.UpdatedReplicas == desired && s.Replicas == desired &&
		s.ReadyReplicas == desired && s.AvailableReplicas == desired
	switch {
	case !settled:
		setHealth(st, gen, false, true, false, ReasonRollingOut,
			fmt.Sprintf("rolling out: %d of %d pods updated, %d ready, %d running", s.UpdatedReplicas, desired, s.ReadyReplicas, s.Replicas))
	case ac.Spec.Suspend:
		setHealth(st, gen, true, false, false, ReasonSuspended, "suspended: scaled to zero pods (spec.suspend)")
	case desired == 0:
		setHealth(st, gen, true, false, false, ReasonScaledToZero, "no pods wanted")
	default:
		setHealth(st, gen, true, false, false, ReasonAvailable, fmt.Sprintf("%d of %d pods ready", s.ReadyReplicas, desired))
	}
}

// rolloutFailed reads the Deployment controller's verdict: a rollout past its progress
// deadline, or pods that cannot be created.
func rolloutFailed(dep *appsv1.Deployment) (bool, string) {
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			return true, "the rollout exceeded its progress deadline: " + c.Message
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return true, "pods cannot be created: " + c.Message
		}
	}
	return false, ""
}

func setScaling(st *atlasv1alpha1.AtlasConsumerStatus, gen int64, res *scaleResult) {
	if res == nil {
		st.Lag, st.Drain = nil, nil
		st.ScaleDownPeaks, st.RecommendedReplicas = nil, nil
		setCondition(st, gen, atlasv1alpha1.ConditionScalingActive, false, ReasonAutoscalingOff, "spec.autoscaling is not set: the replica count is spec.replicas")
		meta.RemoveStatusCondition(&st.Conditions, atlasv1alpha1.ConditionScalingLimited)
		return
	}
	d := res.decision
	setCondition(st, gen, atlasv1alpha1.ConditionScalingActive, d.ScalingActive.Status, d.ScalingActive.Reason, d.ScalingActive.Message)
	setCondition(st, gen, atlasv1alpha1.ConditionScalingLimited, d.ScalingLimited.Status, d.ScalingLimited.Reason, d.ScalingLimited.Message)
	if res.lag != nil && res.fresh {
		st.Lag = nextLagStatus(st.Lag, lagStatus(*res.lag, d.Excluded))
	}
	switch {
	case d.ScalingActive.Reason == scaling.ReasonSuspended:
		st.ScaleDownPeaks, st.RecommendedReplicas = nil, nil
	case res.lag != nil: // (without a lag nothing was decided: the window stays as it was)
		st.ScaleDownPeaks = peaksStatus(d)
		if rec, ok := d.Recommended(); ok {
			st.RecommendedReplicas = &rec
		}
	}
	switch {
	case !res.drainPolicy:
		st.Drain = nil
	case res.lag != nil && d.Drain != nil:
		st.Drain = drainStatus(res.rates, d.Drain)
	}
}

// nextLagStatus is the status.lag to write after a measurement: the old one while every
// figure is the same, so a steady lag (an idle topic, a group keeping up) writes nothing at
// every poll, and Flux or Argo CD beside the operator see an object at rest. measuredAt
// therefore says since when the lag has held these figures; whether it is still measured
// is the ScalingActive condition's to say (LagUnavailable when it is not).
func nextLagStatus(old, measured *atlasv1alpha1.LagStatus) *atlasv1alpha1.LagStatus {
	if old != nil && old.Total == measured.Total && old.Partitions == measured.Partitions &&
		old.LaggingPartitions == measured.LaggingPartitions && old.Max == measured.Max &&
		slices.Equal(old.Top, measured.Top) && slices.Equal(old.ExcludedPartitions, measured.ExcludedPartitions) {
		return old
	}
	return measured
}

// topPartitions is how many of the laggiest partitions status.lag lists.
const topPartitions = 5

func lagStatus(lag scaling.Lag, excluded []int32) *atlasv1alpha1.LagStatus {
	ls := &atlasv1alpha1.LagStatus{
		Total:              lag.Total,
		Partitions:         int32(len(lag.Partitions)),
		ExcludedPartitions: excluded,
		MeasuredAt:         metav1.NewTime(lag.MeasuredAt.Truncate(time.Second)), // the API stores seconds
	}
	parts := make([]scaling.PartitionLag, 0, len(lag.Partitions))
	for _, p := range lag.Partitions {
		if p.Lag > 0 {
			ls.LaggingPartitions++
			ls.Max = max(ls.Max, p.Lag)
			parts = append(parts, p)
		}
	}
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].Lag > parts[j].Lag })
	for _, p := range parts[:min(len(parts), topPartitions)] {
		ls.Top = append(ls.Top, atlasv1alpha1.PartitionLag{Partition: p.Partition, Lag: p.Lag})
	}
	return ls
}
