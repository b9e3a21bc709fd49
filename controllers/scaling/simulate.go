package scaling

import (
	"math"
	"slices"
	"sort"
	"time"
)

// The simulator replays a traffic trace through a scaling policy, second by second, with
// a model of the pods: each takes StartUp to become ready, every change of the ready pods
// stops consumption for Rebalance (the group rebalances), partitions are spread over the
// ready pods as evenly as a group spreads them (pod j owns partitions j, j+n, j+2n...),
// and a pod splits its capacity over its partitions that have records. The policy code
// is the operator's own (Decide, Rates.Observe), fed the lag the operator would read at
// each poll. Everything is deterministic: the same trace and settings give the same run.

// Trace is a traffic pattern.
type Trace struct {
	Name       string
	Seconds    int
	Partitions int32
	// Arrival is the records/s arriving during second t, spread evenly over the partitions.
	Arrival func(t int) float64
	// PodRate is the records/s one pod processes during second t (records of cost 1).
	PodRate func(t int) float64
	// Cost is each partition's cost per record (nil: 1 everywhere); a slow partition's
	// records take longer.
	Cost []float64
	// Bursts are the [start, end) seconds of the bursts whose drain time is reported.
	Bursts [][2]int
}

// PodModel is how pods behave in the simulation.
type PodModel struct {
	StartUp   time.Duration
	Rebalance time.Duration
}

// Simulation is one run's settings.
type Simulation struct {
	Trace  Trace
	Pods   PodModel
	Policy Policy
	Poll   time.Duration
	// Initial is the replica count at the start (ready from the start).
	Initial int32
}

// SimPoint is the state at the end of one second.
type SimPoint struct {
	Lag     float64
	Desired int32
	Ready   int32
	// Behind is how long the oldest unconsumed record has waited, in seconds.
	Behind float64
}

// SimResult is what a run measured.
type SimResult struct {
	Points []SimPoint
	// LongestBehind is the most any record waited, in seconds.
	LongestBehind float64
	// BurstDrain is, per burst of the trace, the seconds from its start until the
	// consumer is less than CaughtUp behind again after its end (-1: never).
	BurstDrain []float64
	// PodSeconds is the pods' running time (starting pods included).
	PodSeconds float64
	// Actions is how many times the desired replicas changed.
	Actions int
}

// CaughtUp is how far behind a consumer may be and count as caught up after a burst.
const CaughtUp = 5 * time.Second

type simPod struct{ readyAt int }

// Run runs the simulation.
func (s Simulation) Run() SimResult {
	tr := s.Trace
	P := int(tr.Partitions)
	cost := func(p int) float64 {
		if p < len(tr.Cost) && tr.Cost[p] > 0 {
			return tr.Cost[p]
		}
		return 1
	}
	end := make([]float64, P)       // records appended, per partition
	committed := make([]float64, P) // records consumed, per partition
	cum := make([][]float64, P)     // cum[p][t]: records appended to p by the end of second t
	for p := range cum {
		cum[p] = make([]float64, tr.Seconds)
	}
	startUp, rebalance := int(s.Pods.StartUp.Seconds()), int(s.Pods.Rebalance.Seconds())
	poll := max(int(s.Poll.Seconds()), 1)
	epoch := time.Unix(0, 0)

	var pods []simPod
	for range s.Initial {
		pods = append(pods, simPod{readyAt: 0})
	}
	desired := s.Initial
	var res SimResult
	var history []Recommendation
	var rates Rates
	var prev *Lag
	prevReady := int32(-1)
	pausedUntil, lastReady := -1, int32(len(pods))

	for t := 0; t < tr.Seconds; t++ {
		arrival := tr.Arrival(t)
		for p := range P {
			end[p] += arrival / float64(P)
			cum[p][t] = end[p]
		}
		ready := int32(0)
		for _, pd := range pods {
			if pd.readyAt <= t {
				ready++
			}
		}
		if ready != lastReady {
			pausedUntil, lastReady = t+rebalance, ready
		}
		if ready > 0 && t >= pausedUntil {
			consume(end, committed, cost, int(ready), tr.PodRate(t))
		}
		res.PodSeconds += float64(len(pods))

		// how long the oldest unconsumed record of each partition has waited
		behind, lag := 0.0, 0.0
		for p := range P {
			lag += end[p] - committed[p]
			if end[p]-committed[p] < 0.5 {
				continue
			}
			// the second in which the record after the committed one arrived
			s := sort.Search(t+1, func(i int) bool { return cum[p][i] > committed[p]+0.5 })
			if s <= t {
				behind = math.Max(behind, float64(t-s))
			}
		}
		res.LongestBehind = math.Max(res.LongestBehind, behind)

		if t%poll == 0 {
			cur := Lag{MeasuredAt: epoch.Add(time.Duration(t) * time.Second)}
			for p := range P {
				c, e := int64(committed[p]), int64(end[p])
				cur.Partitions = append(cur.Partitions, PartitionLag{Partition: int32(p), Committed: c, End: e, Lag: e - c})
				cur.Total += e - c
			}
			if prev != nil {
				stable := prevReady == ready && ready == desired && pausedUntil <= t-poll
				rates = rates.Observe(Interval{Previous: *prev, Current: cur, Ready: ready, Stable: stable})
			}
			d := Decide(Input{Now: cur.MeasuredAt, Current: desired, Policy: s.Policy, Lag: cur, Previous: prev,
				History: history, Rates: rates, Ready: ready})
			history = d.History
			if d.Desired != desired {
				res.Actions++
				pods = resize(pods, int(d.Desired), t+startUp)
				desired = d.Desired
			}
			prev, prevReady = &cur, ready
		}
		res.Points = append(res.Points, SimPoint{Lag: lag, Desired: desired, Ready: ready, Behind: behind})
	}
	for _, b := range tr.Bursts {
		drained := -1.0
		for t := b[1]; t < len(res.Points); t++ {
			if res.Points[t].Behind < CaughtUp.Seconds() {
				drained = float64(t - b[0])
				break
			}
		}
		res.BurstDrain = append(res.BurstDrain, drained)
	}
	return res
}

// consume lets n ready pods work one second: pod j owns partitions j, j+n, ... and
// spends its capacity on those with records, each record costing its partition's cost;
// capacity a partition leaves unused goes to the pod's other partitions.
func consume(end, committed []float64, cost func(int) float64, n int, rate float64) {
	P := len(end)
	for j := 0; j < n && j < P; j++ {
		var owned []int
		for p := j; p < P; p += n {
			owned = append(owned, p)
		}
		capacity := rate // in cost units
		for capacity > 1e-9 {
			var waiting []int
			for _, p := range owned {
				if end[p]-committed[p] > 1e-9 {
					waiting = append(waiting, p)
				}
			}
			if len(waiting) == 0 {
				break
			}
			share, used := capacity/float64(len(waiting)), 0.0
			for _, p := range waiting {
				took := math.Min(end[p]-committed[p], share/cost(p))
				committed[p] += took
				used += took * cost(p)
			}
			if used < 1e-9 {
				break
			}
			capacity -= used
		}
	}
}

// resize changes the pods to n: new ones become ready at readyAt; going down, the pods
// not ready yet go first, then the newest.
func resize(pods []simPod, n int, readyAt int) []simPod {
	for len(pods) < n {
		pods = append(pods, simPod{readyAt: readyAt})
	}
	if len(pods) > n {
		slices.SortStableFunc(pods, func(a, b simPod) int { return a.readyAt - b.readyAt })
		pods = pods[:n]
	}
	return pods
}
