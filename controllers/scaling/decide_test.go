package scaling

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func lagOf(parts ...int64) Lag {
	l := Lag{}
	for i, n := range parts {
		l.Partitions = append(l.Partitions, PartitionLag{Partition: int32(i), Committed: 100, Start: 0, End: 100 + n, Lag: n})
		l.Total += n
	}
	return l
}

func TestComputeLag(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name     string
		o        Offsets
		earliest bool
		want     []int64
	}{
		{"committed", Offsets{Committed: map[int32]int64{0: 40, 1: 100}, Start: map[int32]int64{0: 0, 1: 0}, End: map[int32]int64{0: 100, 1: 100}}, true, []int64{60, 0}},
		{"no commit, earliest counts from the log start", Offsets{Committed: map[int32]int64{}, Start: map[int32]int64{0: 30}, End: map[int32]int64{0: 100}}, true, []int64{70}},
		{"no commit, latest is no lag", Offsets{Committed: map[int32]int64{0: -1}, Start: map[int32]int64{0: 30}, End: map[int32]int64{0: 100}}, false, []int64{0}},
		{"commit deleted by retention, earliest: reset to the log start", Offsets{Committed: map[int32]int64{0: 10}, Start: map[int32]int64{0: 50}, End: map[int32]int64{0: 80}}, true, []int64{30}},
		{"commit deleted by retention, latest: reset to the end, no lag", Offsets{Committed: map[int32]int64{0: 10}, Start: map[int32]int64{0: 50}, End: map[int32]int64{0: 80}}, false, []int64{0}},
		{"empty partition", Offsets{Committed: map[int32]int64{}, Start: map[int32]int64{0: 0}, End: map[int32]int64{0: 0}}, true, []int64{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ComputeLag(c.o, c.earliest, now)
			var total int64
			for i, w := range c.want {
				if got.Partitions[i].Lag != w {
					t.Fatalf("partition %d lag %d, want %d", i, got.Partitions[i].Lag, w)
				}
				total += w
			}
			if got.Total != total || !got.MeasuredAt.Equal(now) {
				t.Fatalf("total %d at %v, want %d", got.Total, got.MeasuredAt, total)
			}
		})
	}
}

// A latest group's partitions without a commit are Unpositioned; a commit, or an
// earliest group, positions them.
func TestComputeLagUnpositioned(t *testing.T) {
	o := Offsets{Committed: map[int32]int64{1: 5, 2: -1}, Start: map[int32]int64{0: 0, 1: 0, 2: 0}, End: map[int32]int64{0: 9, 1: 9, 2: 9}}
	if got := ComputeLag(o, false, time.Unix(1, 0)).Unpositioned; len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Fatalf("latest: unpositioned %v, want [0 2]", got)
	}
	if got := ComputeLag(o, true, time.Unix(1, 0)).Unpositioned; len(got) != 0 {
		t.Fatalf("earliest: unpositioned %v, want none", got)
	}
}

func TestDecide(t *testing.T) {
	now := time.Unix(10_000, 0)
	policy := Policy{MinReplicas: 1, MaxReplicas: 8, LagPerReplica: 1000, ScaleDownStabilization: time.Minute}
	cases := []struct {
		name        string
		in          Input
		want        int32
		active      string
		limited     bool
		limitReason string
	}{
		{name: "lag asks for 3", in: Input{Lag: lagOf(1000, 1000, 500, 0, 0, 0), Current: 1}, want: 3, active: ReasonValidLag},
		{name: "no lag holds minReplicas", in: Input{Lag: lagOf(0, 0), Current: 2}, want: 1, active: ReasonValidLag, limited: true, limitReason: ReasonMinReplicas},
		{name: "capped at the partitions", in: Input{Lag: lagOf(9000, 9000, 9000, 9000), Current: 1}, want: 4, active: ReasonValidLag, limited: true, limitReason: ReasonPartitionLimit},
		{name: "exactly the partitions is not limited", in: Input{Lag: lagOf(1000, 1000, 1000, 1000), Current: 1}, want: 4, active: ReasonValidLag},
		{name: "capped at maxReplicas", in: Input{Lag: lagOf(5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000), Current: 1}, want: 8, active: ReasonValidLag, limited: true, limitReason: ReasonMaxReplicas},
		{name: "scale down waits for the window", in: Input{Lag: lagOf(0, 0, 0), Current: 3, History: []Recommendation{{At: now.Add(-30 * time.Second), Replicas: 3}}}, want: 3, active: ReasonScaleDownDeferred, limited: true, limitReason: ReasonMinReplicas},
		{name: "scale down after the window", in: Input{Lag: lagOf(0, 0, 0), Current: 3, History: []Recommendation{{At: now.Add(-61 * time.Second), Replicas: 3}}}, want: 1, active: ReasonValidLag, limited: true, limitReason: ReasonMinReplicas},
		{name: "scale up is immediate", in: Input{Lag: lagOf(3000, 3000), Current: 1, History: []Recommendation{{At: now.Add(-time.Second), Replicas: 1}}}, want: 2, active: ReasonValidLag, limited: true, limitReason: ReasonPartitionLimit},
		{name: "suspend wins over autoscaling", in: Input{Suspended: true, Lag: lagOf(9000, 9000), Current: 2}, want: 0, active: ReasonSuspended},
		{name: "an unreadable lag keeps the replicas", in: Input{LagErr: errors.New("broker down"), Current: 5, History: []Recommendation{{At: now, Replicas: 5}}}, want: 5, active: ReasonLagUnavailable},
		{name: "no measurement yet keeps the replicas", in: Input{AwaitingLag: true, Current: 2}, want: 2, active: ReasonAwaitingLag},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.Now = now
			if in.Policy == (Policy{}) {
				in.Policy = policy
			}
			d := Decide(in)
			if d.Desired != c.want {
				t.Fatalf("desired %d, want %d (%+v)", d.Desired, c.want, d)
			}
			if d.ScalingActive.Reason != c.active {
				t.Fatalf("ScalingActive reason %q (%s), want %q", d.ScalingActive.Reason, d.ScalingActive.Message, c.active)
			}
			if d.ScalingLimited.Status != c.limited || (c.limited && d.ScalingLimited.Reason != c.limitReason) {
				t.Fatalf("ScalingLimited %v %q (%s), want %v %q", d.ScalingLimited.Status, d.ScalingLimited.Reason, d.ScalingLimited.Message, c.limited, c.limitReason)
			}
		})
	}
}

func TestDecideFromZero(t *testing.T) {
	p := Policy{MinReplicas: 0, MaxReplicas: 4, LagPerReplica: 100, ScaleDownStabilization: time.Minute}
	now := time.Unix(10_000, 0)
	if d := Decide(Input{Now: now, Policy: p, Lag: lagOf(0, 0)}); d.Desired != 0 {
		t.Fatalf("no lag from zero: %d replicas", d.Desired)
	}
	if d := Decide(Input{Now: now, Policy: p, Lag: lagOf(1, 0)}); d.Desired != 1 {
		t.Fatalf("one record of lag from zero: %d replicas", d.Desired)
	}
}

// KEDA's Kafka scaler scenarios at minReplicas 0: a consumer is never left at zero
// while something waits for it.
func TestDecideNeverStrandsAtZero(t *testing.T) {
	p := Policy{MinReplicas: 0, MaxReplicas: 6, LagPerReplica: 100, ScaleDownStabilization: 0, ExcludeStuckPartitions: true}
	now := time.Unix(10_000, 0)
	stuck := lagOf(40, 0, 0) // partition 0's commit did not move between measurements
	prev := lagOf(30, 0, 0)
	unpositioned := lagOf(0, 0, 0)
	unpositioned.Unpositioned = []int32{1}
	for _, c := range []struct {
		name    string
		in      Input
		want    int32
		reason  string
		limited bool
	}{
		{"(a) a stuck partition while running: left out, but one replica stays", Input{Lag: stuck, Previous: &prev, Current: 2}, 1, ReasonRecordsWaiting, true},
		{"(a) a stuck partition at zero replicas: back to one", Input{Lag: stuck, Previous: &prev, Current: 0}, 1, ReasonRecordsWaiting, true},
		{"(b) a latest group without a position: one replica joins to take it", Input{Lag: unpositioned, Current: 0}, 1, ReasonNoPosition, true},
		{"nothing waits and every partition is positioned: zero", Input{Lag: lagOf(0, 0, 0), Current: 1}, 0, ReasonWithinLimits, false},
		{"minReplicas above zero is not a floor of this kind", Input{Lag: stuck, Previous: &prev, Current: 2, Policy: Policy{MinReplicas: 2, MaxReplicas: 6, LagPerReplica: 100, ExcludeStuckPartitions: true}}, 2, ReasonMinReplicas, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.Now = now
			if in.Policy == (Policy{}) {
				in.Policy = p
			}
			d := Decide(in)
			if d.Desired != c.want || d.ScalingLimited.Status != c.limited || d.ScalingLimited.Reason != c.reason {
				t.Fatalf("desired %d, ScalingLimited %v %s (%s); want %d, %v %s", d.Desired, d.ScalingLimited.Status, d.ScalingLimited.Reason, d.ScalingLimited.Message, c.want, c.limited, c.reason)
			}
		})
	}
}

func TestDecideExcludesStuckPartitions(t *testing.T) {
	p := Policy{MinReplicas: 1, MaxReplicas: 6, LagPerReplica: 100, ScaleDownStabilization: time.Minute, ExcludeStuckPartitions: true}
	prev := lagOf(5000, 50, 0)
	cur := lagOf(5200, 50, 0)
	cur.Partitions[1].Committed = 150 // partition 1 moved; partition 0 did not
	d := Decide(Input{Now: time.Unix(1, 0), Policy: p, Lag: cur, Previous: &prev, Current: 1})
	if len(d.Excluded) != 1 || d.Excluded[0] != 0 || d.ScalingLag != 50 || d.Desired != 1 {
		t.Fatalf("excluded %v, scaling lag %d, desired %d: want partition 0 left out", d.Excluded, d.ScalingLag, d.Desired)
	}
	if !strings.Contains(d.ScalingActive.Message, "stuck partitions [0]") {
		t.Fatalf("message %q does not name the stuck partition", d.ScalingActive.Message)
	}
	p.ExcludeStuckPartitions = false
	if d := Decide(Input{Now: time.Unix(1, 0), Policy: p, Lag: cur, Previous: &prev, Current: 1}); d.Desired != 3 {
		t.Fatalf("without the option the stuck partition counts: desired %d, want 3 (capped at 3 partitions)", d.Desired)
	}
}

func TestWindowPeaks(t *testing.T) {
	now := time.Unix(10_000, 0)
	at := func(secondsAgo int) time.Time { return now.Add(-time.Duration(secondsAgo) * time.Second) }
	rec := func(secondsAgo int, replicas int32) Recommendation {
		return Recommendation{At: at(secondsAgo), Replicas: replicas}
	}
	cases := []struct {
		name    string
		history []Recommendation
		rec     int32
		want    []Recommendation
	}{
		{"nothing before", nil, 2, []Recommendation{rec(0, 2)}},
		{"a steady recommendation keeps one entry", []Recommendation{rec(5, 2)}, 2, []Recommendation{rec(0, 2)}},
		{"a lower one is dropped by a higher", []Recommendation{rec(20, 1), rec(10, 2)}, 3, []Recommendation{rec(0, 3)}},
		{"higher ones stay, each with its last time", []Recommendation{rec(50, 6), rec(30, 4), rec(10, 2)}, 1,
			[]Recommendation{rec(50, 6), rec(30, 4), rec(10, 2), rec(0, 1)}},
		{"a peak leaves with the window", []Recommendation{rec(60, 6), rec(30, 4)}, 1, []Recommendation{rec(30, 4), rec(0, 1)}},
		{"unordered input, as a status edited by hand may hold", []Recommendation{rec(10, 2), rec(50, 6), rec(30, 4)}, 1,
			[]Recommendation{rec(50, 6), rec(30, 4), rec(10, 2), rec(0, 1)}},
		{"a later equal one replaces an older", []Recommendation{rec(40, 4), rec(20, 4)}, 1, []Recommendation{rec(20, 4), rec(0, 1)}},
		{"a time ahead of now stays", []Recommendation{{At: now.Add(time.Second), Replicas: 5}}, 1,
			[]Recommendation{{At: now.Add(time.Second), Replicas: 5}, rec(0, 1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := windowPeaks(c.history, now, time.Minute, c.rec)
			if !slices.Equal(got, c.want) {
				t.Fatalf("windowPeaks = %v, want %v", got, c.want)
			}
			if d := (Decision{History: got}); !slices.Equal(d.Peaks(), c.want[:len(c.want)-1]) {
				t.Fatalf("Peaks = %v", d.Peaks())
			}
		})
	}
}

// A recommendation that stays the same leaves the peaks unchanged, measurement after
// measurement (no status write per poll), and the scale-down waits for the window from
// the last time the higher count was recommended.
func TestDecidePeaksChangeOnlyWithTheRecommendation(t *testing.T) {
	policy := Policy{MinReplicas: 1, MaxReplicas: 8, LagPerReplica: 1000, ScaleDownStabilization: time.Minute}
	start := time.Unix(10_000, 0)
	var history []Recommendation
	decide := func(secs int, lag int64) Decision {
		d := Decide(Input{Now: start.Add(time.Duration(secs) * time.Second), Current: 4, Policy: policy, Lag: lagOf(lag, 0, 0, 0), History: history})
		history = d.History
		return d
	}
	for secs := 0; secs <= 20; secs += 5 {
		if d := decide(secs, 4000); d.Desired != 4 || len(d.Peaks()) != 0 {
			t.Fatalf("at %ds with a lag of 4000: desired %d, peaks %v", secs, d.Desired, d.Peaks())
		}
	}
	var peaks []Recommendation
	for secs := 25; secs < 80; secs += 5 {
		d := decide(secs, 0)
		if d.Desired != 4 {
			t.Fatalf("at %ds (the last 4 at 20s, a 60s window): desired %d", secs, d.Desired)
		}
		if peaks != nil && !slices.Equal(peaks, d.Peaks()) {
			t.Fatalf("at %ds the peaks changed with the recommendation the same: %v then %v", secs, peaks, d.Peaks())
		}
		peaks = d.Peaks()
	}
	if want := []Recommendation{{At: start.Add(20 * time.Second), Replicas: 4}}; !slices.Equal(peaks, want) {
		t.Fatalf("peaks %v, want %v", peaks, want)
	}
	if d := decide(80, 0); d.Desired != 1 || len(d.Peaks()) != 0 {
		t.Fatalf("at 80s: desired %d, peaks %v; want 1 and none", d.Desired, d.Peaks())
	}
}
