package scaling

import (
	"reflect"
	"testing"
	"time"
)

func constant(v float64) func(int) float64 { return func(int) float64 { return v } }

// fixed is a policy that holds n replicas whatever the lag.
func fixed(n int32) Policy {
	return Policy{MinReplicas: n, MaxReplicas: n, LagPerReplica: 1 << 40, ScaleDownStabilization: time.Minute}
}

// A backlog of 60,000 records on 6 partitions, no arrivals, 1,000 records/s per pod.
func backlog(seconds int) Trace {
	return Trace{Name: "backlog", Seconds: seconds, Partitions: 6,
		Arrival: func(t int) float64 {
			if t == 0 {
				return 60_000
			}
			return 0
		},
		PodRate: constant(1000)}
}

func drainedAt(r SimResult) int {
	for t, p := range r.Points {
		if t > 0 && p.Lag < 1 {
			return t
		}
	}
	return -1
}

// The pod model drains as Effective says: 4 pods on 6 partitions are no faster than 3,
// and 6 are twice as fast as 3.
func TestSimulationDrainsAsEffectiveSays(t *testing.T) {
	at := map[int32]int{}
	for _, n := range []int32{3, 4, 6} {
		r := Simulation{Trace: backlog(200), Policy: fixed(n), Poll: 15 * time.Second, Initial: n}.Run()
		at[n] = drainedAt(r)
	}
	if at[3] != 19 || at[4] != at[3] || at[6] != 9 {
		t.Fatalf("drained at the end of second %v, want 3 and 4 pods at 19, 6 pods at 9", at)
	}
}

// Nothing is consumed before a pod is ready and while the group rebalances; the time
// behind counts from each record's arrival.
func TestSimulationStartUpAndRebalance(t *testing.T) {
	tr := Trace{Name: "steady", Seconds: 120, Partitions: 2, Arrival: constant(100), PodRate: constant(1000)}
	r := Simulation{Trace: tr, Pods: PodModel{StartUp: 20 * time.Second, Rebalance: 5 * time.Second},
		Policy: fixed(1), Poll: 10 * time.Second, Initial: 0}.Run()
	// The first poll (second 0) asks for 1 pod, ready at second 20; the rebalance holds it
	// to second 25: the records of second 0 are still waiting at the end of second 24.
	if r.LongestBehind != 24 {
		t.Fatalf("longest behind %v s, want 24", r.LongestBehind)
	}
	if last := r.Points[len(r.Points)-1]; last.Lag > 100 || last.Behind > 1 {
		t.Fatalf("at the end lag %v, behind %v s: a pod of 1,000/s should keep up with 100/s", last.Lag, last.Behind)
	}
	if r.Actions != 1 || r.PodSeconds != 119 {
		t.Fatalf("actions %d, pod-seconds %v, want 1 and 119 (the pod exists from the poll at second 0 on)", r.Actions, r.PodSeconds)
	}
}

// A slow partition's records cost more: the pod that owns it falls behind on it alone.
func TestSimulationSlowPartition(t *testing.T) {
	tr := Trace{Name: "slow", Seconds: 60, Partitions: 2, Arrival: constant(1200), PodRate: constant(1000), Cost: []float64{3, 1}}
	r := Simulation{Trace: tr, Policy: fixed(2), Poll: 10 * time.Second, Initial: 2}.Run()
	// partition 0 gets 600/s at cost 3 (1,800 units/s) from a pod of 1,000: it falls behind
	// by 600 - 333 = 267 records/s; partition 1 keeps up.
	want := 267.0 * 60
	if got := r.Points[59].Lag; got < want*0.95 || got > want*1.05 {
		t.Fatalf("lag after 60 s %v, want about %v", got, want)
	}
}

// The same simulation twice gives the same result.
func TestSimulationIsDeterministic(t *testing.T) {
	tr := Trace{Name: "burst", Seconds: 900, Partitions: 12, PodRate: constant(1000),
		Arrival: func(t int) float64 {
			if t >= 100 && t < 120 {
				return 8000
			}
			return 500
		}, Bursts: [][2]int{{100, 120}}}
	sim := Simulation{Trace: tr, Pods: PodModel{StartUp: 20 * time.Second, Rebalance: 5 * time.Second},
		Policy: Policy{MinReplicas: 1, MaxReplicas: 12, TargetDrainTime: time.Minute, ScaleDownStabilization: 5 * time.Minute},
		Poll:   15 * time.Second, Initial: 1}
	a, b := sim.Run(), sim.Run()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs of the same simulation differ")
	}
	if a.BurstDrain[0] <= 0 || a.Actions < 2 {
		t.Fatalf("burst drained in %v s with %d actions: the policy should scale up and back down", a.BurstDrain[0], a.Actions)
	}
}
