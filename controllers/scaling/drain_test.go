package scaling

import (
	"strings"
	"testing"
	"time"
)

func TestEffective(t *testing.T) {
	cases := []struct {
		n, partitions int32
		want          float64
	}{
		{0, 6, 0}, {1, 6, 1}, {2, 6, 2}, {3, 6, 3},
		{4, 6, 3}, // 2, 2, 1, 1: drains like 3 pods
		{5, 6, 3}, {6, 6, 6}, {9, 6, 6},
		{5, 12, 4}, {7, 12, 6}, {4, 12, 4},
		{1, 0, 1},
	}
	for _, c := range cases {
		if got := Effective(c.n, c.partitions); got != c.want {
			t.Errorf("Effective(%d, %d) = %v, want %v", c.n, c.partitions, got, c.want)
		}
	}
}

// measured builds two measurements dt apart: per partition the committed offsets at
// both and the end offsets at both.
func measured(dt time.Duration, parts ...[4]int64) (Lag, Lag) {
	t0 := time.Unix(1000, 0)
	prev, cur := Lag{MeasuredAt: t0}, Lag{MeasuredAt: t0.Add(dt)}
	for i, p := range parts {
		a := PartitionLag{Partition: int32(i), Committed: p[0], End: p[2], Lag: p[2] - p[0]}
		b := PartitionLag{Partition: int32(i), Committed: p[1], End: p[3], Lag: p[3] - p[1]}
		prev.Partitions, cur.Partitions = append(prev.Partitions, a), append(cur.Partitions, b)
		prev.Total += a.Lag
		cur.Total += b.Lag
	}
	return prev, cur
}

func TestRatesObserve(t *testing.T) {
	// Two partitions, 10 s: each had 5,000 waiting and 2,000 consumed; 300 arrived on each.
	busyPrev, busyCur := measured(10*time.Second, [4]int64{0, 2000, 5000, 5300}, [4]int64{0, 2000, 5000, 5300})
	// Partition 0 had only 1,000 waiting at the start and 1,300 arrived: its pod ran dry.
	dryPrev, dryCur := measured(10*time.Second, [4]int64{0, 2000, 1000, 2300}, [4]int64{0, 2000, 5000, 5300})
	cases := []struct {
		name        string
		iv          Interval
		wantArrival float64
		wantPod     float64
		wantSamples int32
	}{
		{"busy and stable: 4,000 in 10 s by 2 pods", Interval{Previous: busyPrev, Current: busyCur, Ready: 2, Stable: true}, 60, 200, 1},
		{"busy, one pod owns both partitions", Interval{Previous: busyPrev, Current: busyCur, Ready: 1, Stable: true}, 60, 400, 1},
		{"busy but pods changed meanwhile: arrivals only", Interval{Previous: busyPrev, Current: busyCur, Ready: 2, Stable: false}, 60, 0, 0},
		{"a partition ran dry: arrivals only", Interval{Previous: dryPrev, Current: dryCur, Ready: 2, Stable: true}, 160, 0, 0},
		{"the dry partition is stuck and left out", Interval{Previous: dryPrev, Current: dryCur, Ready: 2, Stable: true, Stuck: []int32{0}}, 160, 100, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Rates{}.Observe(c.iv)
			if got.Arrival != c.wantArrival || got.PodRate != c.wantPod || got.Samples != c.wantSamples {
				t.Fatalf("got %+v, want arrival %v, pod %v, samples %d", got, c.wantArrival, c.wantPod, c.wantSamples)
			}
		})
	}
	// Smoothing: a second busy interval at half the rate moves the estimate half-way.
	r := Rates{}.Observe(Interval{Previous: busyPrev, Current: busyCur, Ready: 2, Stable: true})
	r = r.Observe(Interval{Previous: busyPrev, Current: busyCur, Ready: 1, Stable: true})
	if r.PodRate != 300 || r.Samples != 2 {
		t.Fatalf("smoothed %+v, want pod rate 300 over 2 samples", r)
	}
	// A measurement at the same instant changes nothing.
	same := Interval{Previous: busyCur, Current: busyCur, Ready: 2, Stable: true}
	if got := r.Observe(same); got != r {
		t.Fatalf("a zero interval changed the rates: %+v", got)
	}
}

func TestPlanDrain(t *testing.T) {
	known := Rates{Arrival: 100, PodRate: 1000, Samples: 3, ArrivalKnown: true}
	cases := []struct {
		name         string
		rates        Rates
		lag          int64
		target       time.Duration
		partitions   int32
		limit, floor int32
		want         int32
		met          bool
		fallback     bool
	}{
		// need 100 + 60,000/60 = 1,100/s: 2 pods of 1,000/s
		{"two pods drain 60k in a minute", known, 60_000, time.Minute, 6, 6, 1, 2, true, false},
		// need 100 + 240,000/60 = 4,100/s: 5 pods, but 5 on 6 partitions work like 3; 6 it is
		{"an uneven count is skipped", known, 240_000, time.Minute, 6, 6, 1, 6, true, false},
		// need 3,100/s: 4 pods would work like 3 (2,2,1,1 of 6 partitions) and fall short
		{"four on six partitions are not enough for 3,100/s", known, 180_000, time.Minute, 6, 6, 1, 6, true, false},
		// need 2,100/s: 3 pods of 2 partitions each
		{"three even pods", known, 120_000, time.Minute, 6, 6, 1, 3, true, false},
		{"no lag: what arrivals need, at least the floor", known, 0, time.Minute, 6, 6, 1, 1, true, false},
		{"no lag, floor 0 but arrivals: one pod", known, 0, time.Minute, 6, 6, 0, 1, true, false},
		{"nothing at all, floor 0: zero", Rates{Samples: 3, PodRate: 1000, ArrivalKnown: true}, 0, time.Minute, 6, 6, 0, 0, true, false},
		{"unreachable: the limit, not met", known, 6_000_000, time.Minute, 6, 4, 1, 4, false, false},
		{"no pod rate yet, lag: hold the 2 replicas to measure them", Rates{Arrival: 100, ArrivalKnown: true, Unmeasured: 1}, 10, time.Minute, 6, 4, 1, 2, true, true},
		{"no pod rate after three intervals that measured nothing: the limit", Rates{Arrival: 100, ArrivalKnown: true, Unmeasured: 3}, 10, time.Minute, 6, 4, 1, 4, true, true},
		{"no pod rate yet, no lag: the floor", Rates{Arrival: 100, ArrivalKnown: true}, 0, time.Minute, 6, 4, 1, 1, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PlanDrain(c.rates, c.lag, c.lag/int64(max(c.partitions, 1)), c.target, c.partitions, c.limit, c.floor, 2)
			if got.Replicas != c.want || got.Met != c.met || got.Fallback != c.fallback {
				t.Fatalf("got %+v, want %d replicas, met %v, fallback %v", got, c.want, c.met, c.fallback)
			}
			if got.Met && !got.Fallback && got.Expected > c.target {
				t.Fatalf("met, but expected drain %s is over the target %s", got.Expected, c.target)
			}
		})
	}
}

func TestDecideDrainTime(t *testing.T) {
	now := time.Unix(10_000, 0)
	policy := Policy{MinReplicas: 1, MaxReplicas: 6, TargetDrainTime: time.Minute, ScaleDownStabilization: time.Minute}
	known := Rates{Arrival: 100, PodRate: 1000, Samples: 3, ArrivalKnown: true}
	cases := []struct {
		name   string
		in     Input
		want   int32
		active string
		inMsg  string
	}{
		{name: "scales up to the fewest pods that drain in time",
			in: Input{Lag: lagOf(20_000, 20_000, 20_000, 20_000, 20_000, 20_000), Current: 1, Ready: 1, Rates: known}, want: 3, active: ReasonValidLag,
			inMsg: "at 3 replicas the lag of 120000 drains in 41s (target 1m0s)"},
		{name: "no pod rate: hold the replicas for a poll to measure them",
			in: Input{Lag: lagOf(10, 0, 0, 0, 0, 0), Current: 1, Ready: 1, Rates: Rates{Arrival: 1, ArrivalKnown: true}}, want: 1, active: ReasonValidLag,
			inMsg: "holding 1 replicas while the next poll measures"},
		{name: "at zero with records waiting and no pod rate: one pod, to measure it",
			in: Input{Lag: lagOf(10, 0, 0, 0, 0, 0), Current: 0, Ready: 0, Rates: Rates{}}, want: 1, active: ReasonValidLag},
		{name: "no pod rate after the measuring intervals: every pod that can take a partition",
			in: Input{Lag: lagOf(10, 0, 0, 0, 0, 0), Current: 1, Ready: 1, Rates: Rates{Arrival: 1, ArrivalKnown: true, Unmeasured: 3}}, want: 6, active: ReasonValidLag,
			inMsg: "all that can take a partition"},
		{name: "too few samples never scale down while records wait",
			in: Input{Lag: lagOf(100, 0, 0, 0, 0, 0), Current: 4, Ready: 4, Rates: Rates{Arrival: 10, PodRate: 1000, Samples: 1, ArrivalKnown: true}}, want: 4, active: ReasonScaleDownHeld,
			inMsg: "rests on 1 busy intervals"},
		{name: "pods not ready never scale down",
			in: Input{Lag: lagOf(100, 0, 0, 0, 0, 0), Current: 4, Ready: 2, Rates: known}, want: 4, active: ReasonScaleDownHeld,
			inMsg: "only 2 of 4 pods are ready"},
		{name: "a trusted estimate scales down (with the window: none held)",
			in: Input{Lag: lagOf(100, 0, 0, 0, 0, 0), Current: 4, Ready: 4, Rates: known}, want: 1, active: ReasonValidLag},
		{name: "no lag and no estimate: down to the floor",
			in: Input{Lag: lagOf(0, 0, 0, 0, 0, 0), Current: 6, Ready: 6, Rates: Rates{ArrivalKnown: true}}, want: 1, active: ReasonValidLag},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now, c.in.Policy = now, policy
			d := Decide(c.in)
			if d.Desired != c.want || d.ScalingActive.Reason != c.active || !strings.Contains(d.ScalingActive.Message, c.inMsg) {
				t.Fatalf("desired %d (%s: %s), want %d (%s, containing %q)", d.Desired, d.ScalingActive.Reason, d.ScalingActive.Message, c.want, c.active, c.inMsg)
			}
			if d.Drain == nil {
				t.Fatal("no drain plan in a drain-time decision")
			}
		})
	}
}

func TestDecideActivationAndPartitionsWithLag(t *testing.T) {
	now := time.Unix(10_000, 0)
	cases := []struct {
		name    string
		policy  Policy
		in      Input
		want    int32
		limited string
	}{
		{"below the activation lag a consumer at zero stays there",
			Policy{MinReplicas: 0, MaxReplicas: 6, LagPerReplica: 100, ActivationLag: 500}, Input{Lag: lagOf(100, 100, 0), Current: 0}, 0, ReasonBelowActivation},
		{"at the activation lag it wakes",
			Policy{MinReplicas: 0, MaxReplicas: 6, LagPerReplica: 250, ActivationLag: 500}, Input{Lag: lagOf(300, 200, 0), Current: 0}, 2, ReasonWithinLimits},
		{"a running consumer is not held back by the activation lag",
			Policy{MinReplicas: 0, MaxReplicas: 6, LagPerReplica: 1000, ActivationLag: 500}, Input{Lag: lagOf(100, 0, 0), Current: 1}, 1, ReasonWithinLimits},
		{"below the activation lag, drain time: zero too",
			Policy{MinReplicas: 0, MaxReplicas: 6, TargetDrainTime: time.Minute, ActivationLag: 500}, Input{Lag: lagOf(100, 100, 0), Current: 0}, 0, ReasonBelowActivation},
		{"a missing position wakes it whatever the activation lag",
			Policy{MinReplicas: 0, MaxReplicas: 6, LagPerReplica: 100, ActivationLag: 500}, Input{Lag: Lag{Partitions: lagOf(0, 0).Partitions, Unpositioned: []int32{1}}, Current: 0}, 1, ReasonNoPosition},
		{"all the lag on one partition: one pod",
			Policy{MinReplicas: 1, MaxReplicas: 6, LagPerReplica: 100, LimitToPartitionsWithLag: true}, Input{Lag: lagOf(5000, 0, 0, 0), Current: 1}, 1, ReasonPartitionsWithLag},
		{"lag on two partitions: two pods at most",
			Policy{MinReplicas: 1, MaxReplicas: 6, LagPerReplica: 100, LimitToPartitionsWithLag: true}, Input{Lag: lagOf(5000, 0, 10, 0), Current: 1}, 2, ReasonPartitionsWithLag},
		{"without the option, the partitions cap",
			Policy{MinReplicas: 1, MaxReplicas: 6, LagPerReplica: 100}, Input{Lag: lagOf(5000, 0, 10, 0), Current: 1}, 4, ReasonPartitionLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now, c.in.Policy = now, c.policy
			d := Decide(c.in)
			if d.Desired != c.want || d.ScalingLimited.Reason != c.limited {
				t.Fatalf("desired %d (%s: %s), want %d (%s)", d.Desired, d.ScalingLimited.Reason, d.ScalingLimited.Message, c.want, c.limited)
			}
		})
	}
}

// A group's first interval on a topic, before any commit on some partitions, still
// measures: a partition without a commit is at its log start (an earliest group).
func TestRatesObserveAGroupWithoutCommits(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := Lag{MeasuredAt: t0, Partitions: []PartitionLag{
		{Partition: 0, Committed: -1, Start: 0, End: 5000, Lag: 5000},
		{Partition: 1, Committed: 200, Start: 0, End: 5000, Lag: 4800},
	}}
	cur := Lag{MeasuredAt: t0.Add(10 * time.Second), Partitions: []PartitionLag{
		{Partition: 0, Committed: 1000, Start: 0, End: 6000, Lag: 5000},
		{Partition: 1, Committed: 1200, Start: 0, End: 6000, Lag: 4800},
	}}
	got := Rates{}.Observe(Interval{Previous: prev, Current: cur, Ready: 1, Stable: true})
	if got.Samples != 1 || got.PodRate != 200 {
		t.Fatalf("got %+v, want one sample of 2,000 records in 10 s by one pod: 200/s", got)
	}
}

// A burst that lands in the first interval the policy sees is in the lag already: it must
// not also become the lasting arrival rate (seen on the node: 7,000 records of a 40,000
// burst in the first interval made arrivals 1,393/s, asked for 6 pods where 2 drained it,
// and held 2 pods for minutes after the lag was gone). The first interval counts only the
// arrivals the pods kept up with; what they did not is in the lag.
func TestRatesFirstIntervalOfABurst(t *testing.T) {
	// Two partitions, 5 s: 3,500 arrived on each, the pods committed 100 of each.
	prev, cur := measured(5*time.Second, [4]int64{0, 100, 0, 3500}, [4]int64{0, 100, 0, 3500})
	got := Rates{}.Observe(Interval{Previous: prev, Current: cur, Ready: 1, Stable: true})
	if got.Arrival != 40 || !got.ArrivalKnown {
		t.Fatalf("got %+v, want arrivals of 200 records in 5 s (what the pods kept up with): 40/s", got)
	}
	// A steady load the pods keep up with is counted whole from the first interval.
	prev, cur = measured(5*time.Second, [4]int64{0, 1000, 0, 1000}, [4]int64{0, 1000, 0, 1000})
	if got := (Rates{}).Observe(Interval{Previous: prev, Current: cur, Ready: 1, Stable: true}); got.Arrival != 400 {
		t.Fatalf("got %+v, want 2,000 records in 5 s: 400/s", got)
	}
	// Once known, arrivals are averaged over about two minutes: the same burst later adds
	// only its share of the horizon.
	prev, cur = measured(5*time.Second, [4]int64{0, 100, 0, 3500}, [4]int64{0, 100, 0, 3500})
	later := Rates{Arrival: 40, ArrivalKnown: true}.Observe(Interval{Previous: prev, Current: cur, Ready: 1, Stable: true})
	if later.Arrival < 40 || later.Arrival > 40+7000/120.0 {
		t.Fatalf("got %+v, want at most 40 + 7,000/120 s", later)
	}
}
