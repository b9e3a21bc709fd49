package controllers

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/scaling"
)

func TestWindowFromStatus(t *testing.T) {
	now := time.Unix(10_000, 0)
	peak := func(secondsAgo int, replicas int32) atlasv1alpha1.ScaleRecommendation {
		return atlasv1alpha1.ScaleRecommendation{Replicas: replicas, Time: metav1.NewTime(now.Add(-time.Duration(secondsAgo) * time.Second))}
	}
	rec := func(secondsAgo int, replicas int32) scaling.Recommendation {
		return scaling.Recommendation{At: now.Add(-time.Duration(secondsAgo) * time.Second), Replicas: replicas}
	}
	for _, c := range []struct {
		name string
		st   atlasv1alpha1.AtlasConsumerStatus
		want []scaling.Recommendation
	}{
		{"nothing recorded", atlasv1alpha1.AtlasConsumerStatus{}, nil},
		{"a steady recommendation holds from the take-over", atlasv1alpha1.AtlasConsumerStatus{RecommendedReplicas: ptr.To[int32](4)}, []scaling.Recommendation{rec(0, 4)}},
		{"peaks keep their times, the latest is now",
			atlasv1alpha1.AtlasConsumerStatus{ScaleDownPeaks: []atlasv1alpha1.ScaleRecommendation{peak(40, 6), peak(20, 4)}, RecommendedReplicas: ptr.To[int32](1)},
			[]scaling.Recommendation{rec(40, 6), rec(20, 4), rec(0, 1)}},
		{"a peak dated after now counts as now",
			atlasv1alpha1.AtlasConsumerStatus{ScaleDownPeaks: []atlasv1alpha1.ScaleRecommendation{peak(-3600, 9)}},
			[]scaling.Recommendation{rec(0, 9)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := windowFromStatus(&c.st, now); !slices.Equal(got, c.want) {
				t.Fatalf("windowFromStatus = %v, want %v", got, c.want)
			}
		})
	}
}

// What a leader writes, a new leader reads back to the same window (to the second).
func TestWindowSurvivesTheStatus(t *testing.T) {
	start := time.Unix(10_000, 300_000_000)
	policy := scaling.Policy{MinReplicas: 1, MaxReplicas: 8, LagPerReplica: 1000, ScaleDownStabilization: time.Minute}
	lag := func(total int64) scaling.Lag {
		return scaling.Lag{Total: total, Partitions: []scaling.PartitionLag{{Partition: 0, Lag: total}, {Partition: 1}, {Partition: 2}, {Partition: 3}, {Partition: 4}, {Partition: 5}}}
	}
	d := scaling.Decide(scaling.Input{Now: start, Current: 1, Policy: policy, Lag: lag(6000)})
	d = scaling.Decide(scaling.Input{Now: start.Add(10 * time.Second), Current: 6, Policy: policy, Lag: lag(3000), History: d.History})
	var st atlasv1alpha1.AtlasConsumerStatus
	setScaling(&st, 1, &scaleResult{decision: d, lag: &scaling.Lag{}, fresh: true})
	if st.RecommendedReplicas == nil || *st.RecommendedReplicas != 3 || len(st.ScaleDownPeaks) != 1 || st.ScaleDownPeaks[0].Replicas != 6 {
		t.Fatalf("status: recommended %v, peaks %+v", st.RecommendedReplicas, st.ScaleDownPeaks)
	}
	if got := st.ScaleDownPeaks[0].Time.Time; got.Before(start) || got.Sub(start) >= time.Second {
		t.Fatalf("the peak of %s is stored as %s: want it rounded up to the second", start, got)
	}
	// A new leader, 20 s later, with no lag left: 6 until a minute after the peak.
	takeOver := start.Add(30 * time.Second)
	for _, at := range []time.Duration{0, 29 * time.Second} {
		d := scaling.Decide(scaling.Input{Now: takeOver.Add(at), Current: 6, Policy: policy, Lag: lag(0), History: windowFromStatus(&st, takeOver)})
		if d.Desired != 6 {
			t.Fatalf("%s after the take-over: desired %d, want 6 until the peak's window ends", at, d.Desired)
		}
	}
	// After the peak's window, the latest recommendation (3) holds a minute from the take-over.
	d = scaling.Decide(scaling.Input{Now: takeOver.Add(40 * time.Second), Current: 6, Policy: policy, Lag: lag(0), History: windowFromStatus(&st, takeOver)})
	if d.Desired != 3 {
		t.Fatalf("after the peak's window: desired %d, want 3 (recommended at the take-over)", d.Desired)
	}
	d = scaling.Decide(scaling.Input{Now: takeOver.Add(61 * time.Second), Current: 3, Policy: policy, Lag: lag(0), History: windowFromStatus(&st, takeOver)})
	if d.Desired != 1 {
		t.Fatalf("a window after the take-over: desired %d, want 1", d.Desired)
	}
}

// What the drain-time policy measured survives a change of leader through status.drain.
func TestDrainRatesSurviveTheStatus(t *testing.T) {
	measured := scaling.Rates{Arrival: 812.4, PodRate: 1530.6, Samples: 3, ArrivalKnown: true}
	plan := &scaling.DrainPlan{Replicas: 2, Met: true, Expected: 41400 * time.Millisecond}
	st := drainStatus(measured, plan)
	if st.ArrivalRate != 812 || st.PodRate == nil || *st.PodRate != 1531 || st.BusyIntervals != 3 || st.ExpectedDrainTime.Duration != 41*time.Second {
		t.Fatalf("status.drain %+v", st)
	}
	back := ratesFromStatus(st)
	if back.Arrival != 812 || back.PodRate != 1531 || back.Samples != 3 || !back.ArrivalKnown {
		t.Fatalf("rates from the status %+v", back)
	}
	// No pod rate yet: none in the status, none read back; a fallback plan expects nothing.
	st = drainStatus(scaling.Rates{Arrival: 5, ArrivalKnown: true}, &scaling.DrainPlan{Replicas: 1, Fallback: true, Expected: -1})
	if st.PodRate != nil || st.ExpectedDrainTime != nil || st.BusyIntervals != 0 {
		t.Fatalf("status.drain without a pod rate %+v", st)
	}
	if back := ratesFromStatus(st); back.Samples != 0 || back.PodRate != 0 {
		t.Fatalf("rates from a status without a pod rate %+v", back)
	}
	if got := ratesFromStatus(nil); got != (scaling.Rates{}) {
		t.Fatalf("rates from no status %+v", got)
	}
}

func TestPolicyFromTheSpec(t *testing.T) {
	drain, _ := policy(&atlasv1alpha1.AutoscalingSpec{MaxReplicas: 6, TargetDrainTime: &metav1.Duration{Duration: time.Minute},
		ActivationLag: ptr.To[int64](50), LimitToPartitionsWithLag: true, MinReplicas: ptr.To[int32](0)})
	if drain.TargetDrainTime != time.Minute || drain.LagPerReplica != 0 || drain.ActivationLag != 50 || !drain.LimitToPartitionsWithLag || drain.MinReplicas != 0 {
		t.Fatalf("drain-time policy %+v", drain)
	}
	lag, poll := policy(&atlasv1alpha1.AutoscalingSpec{MaxReplicas: 6})
	if lag.LagPerReplica != 1000 || lag.TargetDrainTime != 0 || lag.MinReplicas != 1 || poll != 30*time.Second {
		t.Fatalf("default policy %+v, poll %s", lag, poll)
	}
}
