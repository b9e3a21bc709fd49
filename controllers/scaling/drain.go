package scaling

import (
	"fmt"
	"math"
	"time"
)

// The drain-time policy: instead of a lag per replica, the owner of a consumer says how
// far behind it may fall (spec.autoscaling.targetDrainTime). From two successive lag
// measurements the operator knows how many records arrived (log-end offsets) and how many
// the pods consumed (committed offsets); while every partition had work the whole
// interval, what the pods consumed is what they can consume, and divided by the pods that
// could work it is one pod's rate. The policy asks for the fewest pods that keep up with
// arrivals and drain the current lag within the target:
//
//	effective(n) * podRate >= arrivalRate + lag / target
//
// where effective(n) counts n pods sharing the partitions as the busiest of them works:
// with 6 partitions, 4 pods own 2, 2, 1 and 1, and drain like 3 pods of 2 partitions
// each, so 4 is never asked for when 3 would do, nor taken for more than 3.

// Rates is what the drain-time policy has measured of a consumer's traffic, carried from
// one measurement to the next (and in the status, for a new leader).
type Rates struct {
	// Arrival is the rate records arrive at, records/s, smoothed over measurements.
	Arrival float64
	// PodRate is what one pod consumes while it has work, records/s, smoothed; 0 until
	// measured.
	PodRate float64
	// Samples is how many busy intervals PodRate rests on.
	Samples int32
	// ArrivalKnown says Arrival rests on at least one interval.
	ArrivalKnown bool
	// Unmeasured counts the intervals in a row, before any pod rate, in which the pods
	// were ready throughout and records were still waiting at the end, yet the interval
	// measured nothing (the pods had caught up during it, or a burst began in it). The
	// fallback rule holds the replicas while it is below MeasuringIntervals, then runs
	// every pod that can take a partition.
	Unmeasured int32
}

// Smoothing of the rates. Each busy interval counts for half of the pod rate. Arrivals are
// averaged over about arrivalHorizon whatever the poll interval: the policy needs the rate
// that goes on while the lag drains, and a burst's records are in the lag already
// (counting them as a rate that lasts too would ask for pods twice).
const (
	rateSmoothing  = 0.5
	arrivalHorizon = 2 * time.Minute
)

// MinPodRateSamples is how many busy intervals the pod rate needs before the policy scales
// down on it: a first sample may come from an interval disturbed by a rebalance or a slow
// start, and a scale-down on a pod rate measured too high would fall behind.
const MinPodRateSamples = 2

// MeasuringIntervals is how many intervals of ready pods with records waiting the fallback
// rule spends measuring before it gives up and runs every pod that can take a partition:
// the interval in which a burst begins measures nothing (the pods were idle before it),
// the next one does when the burst outlasts it.
const MeasuringIntervals = 2

// Interval is what happened between two lag measurements, as the policy sees it.
type Interval struct {
	Previous, Current Lag
	// Ready is the number of ready pods at both measurements, and Stable says it was the
	// same at both and equal to the pods asked for (no pod started, stopped or restarted,
	// so no rebalance, in between).
	Ready  int32
	Stable bool
	// Stuck partitions are left out of the busy test and the consumption.
	Stuck []int32
}

// Busy says whether every partition kept its pod working through the interval: its lag at
// the start exceeded what the group consumed of it, so the pod never ran out of records.
// Only then is the consumption what the pods can do, not what arrived.
func (iv Interval) Busy() bool {
	_, busy := iv.consumed()
	return busy
}

// consumed is the records committed during the interval (stuck partitions left out) and
// whether the interval was busy.
func (iv Interval) consumed() (int64, bool) {
	prev := map[int32]PartitionLag{}
	for _, p := range iv.Previous.Partitions {
		prev[p.Partition] = p
	}
	stuck := map[int32]bool{}
	for _, p := range iv.Stuck {
		stuck[p] = true
	}
	var total int64
	busy, counted := true, 0
	for _, p := range iv.Current.Partitions {
		before, ok := prev[p.Partition]
		if !ok || stuck[p.Partition] {
			continue
		}
		// The group's position is where its lag starts: the committed offset, or where a
		// group without a commit starts reading (the log start for earliest, so the first
		// records a new group consumes count too).
		c := (p.End - p.Lag) - (before.End - before.Lag)
		if c < 0 {
			busy = false // a reset: nothing to measure on this partition
			continue
		}
		total += c
		counted++
		if before.Lag <= c {
			busy = false
		}
	}
	return total, busy && counted > 0 && total > 0
}

// arrived is the records appended to the partitions during the interval.
func (iv Interval) arrived() int64 {
	prev := map[int32]int64{}
	for _, p := range iv.Previous.Partitions {
		prev[p.Partition] = p.End
	}
	var total int64
	for _, p := range iv.Current.Partitions {
		if before, ok := prev[p.Partition]; ok && p.End >= before {
			total += p.End - before
		}
	}
	return total
}

// Observe folds the interval into the rates: the arrival rate always, the pod rate only
// when the interval was stable and busy.
func (r Rates) Observe(iv Interval) Rates {
	dt := iv.Current.MeasuredAt.Sub(iv.Previous.MeasuredAt).Seconds()
	if dt <= 0 {
		return r
	}
	arrived := iv.arrived()
	consumed, busy := iv.consumed()
	if r.ArrivalKnown {
		r.Arrival += (1 - math.Exp(-dt/arrivalHorizon.Seconds())) * (float64(arrived)/dt - r.Arrival)
	} else {
		// The first interval seeds the average with the arrivals the pods kept up with.
		// The rest is in the lag, which the policy drains anyway: when the interval holds
		// the start of a burst, taking all of it for a lasting rate would ask for pods
		// twice and keep them for minutes after the burst. A steady load the pods keep up
		// with counts whole; one they do not keep up with shows as lag and the average
		// rises to it over the horizon.
		r.Arrival, r.ArrivalKnown = float64(min(arrived, consumed))/dt, true
	}
	if !busy || !iv.Stable || iv.Ready <= 0 {
		switch {
		case r.Samples > 0 || iv.Current.Total == 0:
			r.Unmeasured = 0
		case iv.Stable && iv.Ready > 0:
			r.Unmeasured++
		}
		return r
	}
	r.Unmeasured = 0
	pod := float64(consumed) / dt / Effective(iv.Ready, int32(len(iv.Current.Partitions)))
	if r.Samples == 0 {
		r.PodRate = pod
	} else {
		r.PodRate += rateSmoothing * (pod - r.PodRate)
	}
	r.Samples++
	return r
}

// Effective is how many pods' worth of work n pods do on partitions partitions spread as
// evenly as a group can: the busiest pod owns ceil(partitions/n) of them and the group
// drains at the pace of that pod, so n pods count as partitions/ceil(partitions/n). More
// pods than partitions count as the partitions (the others idle).
func Effective(n, partitions int32) float64 {
	if n <= 0 {
		return 0
	}
	if partitions <= 0 || n >= partitions {
		return float64(max(partitions, min(n, 1)))
	}
	per := (partitions + n - 1) / n
	return float64(partitions) / float64(per)
}

// DrainPlan is the drain-time policy's answer for one measurement.
type DrainPlan struct {
	// Replicas is the fewest pods that meet the target, limit when none does.
	Replicas int32
	// Met says Replicas meets the target (false: even limit pods cannot).
	Met bool
	// Expected is how long the current lag takes to drain at Replicas (with arrivals going
	// on); negative when it never drains.
	Expected time.Duration
	// Fallback says no pod rate has been measured yet: the plan is the fallback rule;
	// Measuring, that it holds the replicas to measure them.
	Fallback, Measuring bool
}

// PlanDrain finds the fewest pods, up to limit, that keep up with the arrivals and drain
// lag within target, given the rates. The partition with the most lag (maxLag) must drain
// in time too, on its own pod's capacity less what that pod's other partitions receive:
// lag piled up on one partition (a hot key, slow records) asks for pods that own fewer
// partitions, which the total alone would not show. Of the counts that do, the smallest wins, and since
// Effective only grows at counts that spread the partitions evenly, the smallest is always
// one of those: with 12 partitions, 5 pods are never chosen (they drain like 4).
//
// Without a measured pod rate, the fallback rule: while records wait, it keeps the
// replicas it has (one at least) so that the next poll measures what they consume,
// since a pod's rate shows only in an interval it spent working, and scaling meanwhile
// would spoil the measurement; after MeasuringIntervals intervals of ready pods that still
// measured nothing, every pod that can take a partition (limit), since the target is the
// owner's promise. With no lag, the floor.
func PlanDrain(r Rates, lag, maxLag int64, target time.Duration, partitions, limit, floor, current int32) DrainPlan {
	floor = min(floor, limit)
	if r.Samples == 0 || r.PodRate <= 0 {
		switch {
		case lag > 0 && r.Unmeasured <= MeasuringIntervals:
			return DrainPlan{Replicas: min(max(current, floor, 1), limit), Met: true, Expected: -1, Fallback: true, Measuring: true}
		case lag > 0:
			return DrainPlan{Replicas: max(limit, floor), Met: true, Expected: -1, Fallback: true}
		}
		return DrainPlan{Replicas: floor, Met: true, Expected: 0, Fallback: true}
	}
	secs := math.Max(target.Seconds(), 1)
	need := r.Arrival + float64(lag)/secs
	plan := DrainPlan{Replicas: limit}
	for n := max(floor, 0); n <= limit; n++ {
		if n == 0 && (lag > 0 || r.Arrival > 0) {
			continue
		}
		if n == 0 || (Effective(n, partitions)*r.PodRate >= need && r.PodRate-neighbours(n, partitions, r.Arrival) >= float64(maxLag)/secs) {
			plan.Replicas, plan.Met = n, true
			break
		}
	}
	plan.Expected = max(drainTime(lag, Effective(plan.Replicas, partitions)*r.PodRate, r.Arrival),
		drainTime(maxLag, r.PodRate, neighbours(plan.Replicas, partitions, r.Arrival)))
	if drainTime(maxLag, r.PodRate, neighbours(plan.Replicas, partitions, r.Arrival)) < 0 {
		plan.Expected = -1
	}
	return plan
}

// neighbours is the arrival rate on the partitions one pod of n owns (the busiest pod,
// ceil(partitions/n) of them), spread evenly: what that pod must keep up with besides
// draining a partition's lag.
func neighbours(n, partitions int32, arrival float64) float64 {
	if n <= 0 || partitions <= 0 {
		return arrival
	}
	per := (partitions + n - 1) / n
	if n >= partitions {
		per = 1
	}
	return arrival * float64(per) / float64(partitions)
}

// drainTime is how long lag takes to drain at capacity records/s while arrival records/s
// keep coming; -1 when it never does.
func drainTime(lag int64, capacity, arrival float64) time.Duration {
	if lag <= 0 {
		return 0
	}
	if capacity <= arrival {
		return -1
	}
	return time.Duration(float64(lag) / (capacity - arrival) * float64(time.Second))
}

// describe describes the plan and the numbers it rests on, for the ScalingActive condition
// and the ScaledUp/ScaledDown Events.
func (p DrainPlan) describe(r Rates, lag int64, target time.Duration) string {
	if p.Fallback {
		switch {
		case p.Measuring:
			return fmt.Sprintf("arrivals %.0f/s; no pod rate measured yet: holding %d replicas while the next poll measures what they consume", r.Arrival, p.Replicas)
		case lag > 0:
			return fmt.Sprintf("arrivals %.0f/s; no pod rate measured yet: %d replicas (all that can take a partition) until one is, for a target drain time of %s",
				r.Arrival, p.Replicas, target)
		}
		return fmt.Sprintf("arrivals %.0f/s, no lag; no pod rate measured yet", r.Arrival)
	}
	s := fmt.Sprintf("arrivals %.0f/s, one pod %.0f/s (%d busy intervals measured)", r.Arrival, r.PodRate, r.Samples)
	switch {
	case p.Expected < 0:
		s += fmt.Sprintf("; at %d replicas the lag of %d never drains (target %s)", p.Replicas, lag, target)
	case !p.Met:
		s += fmt.Sprintf("; at %d replicas, the most allowed, the lag of %d drains in %s, over the target of %s", p.Replicas, lag, p.Expected.Round(time.Second), target)
	default:
		s += fmt.Sprintf("; at %d replicas the lag of %d drains in %s (target %s)", p.Replicas, lag, p.Expected.Round(time.Second), target)
	}
	return s
}
