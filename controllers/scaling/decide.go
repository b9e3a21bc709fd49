package scaling

import (
	"fmt"
	"slices"
	"time"
)

// Policy is how a consumer scales on lag (the AtlasConsumer's spec.autoscaling).
type Policy struct {
	MinReplicas   int32
	MaxReplicas   int32
	LagPerReplica int64
	// ScaleDownStabilization is how long a lower recommendation must persist before
	// replicas go down (scale up is immediate).
	ScaleDownStabilization time.Duration
	// ExcludeStuckPartitions leaves out of the scaling lag a partition whose committed
	// offset did not move since the previous measurement although it has lag (a stuck
	// or poison partition), so one such partition cannot push the fleet to the maximum.
	ExcludeStuckPartitions bool
	// TargetDrainTime, when set, replaces LagPerReplica with the drain-time policy
	// (PlanDrain): the fewest pods that keep up and drain the lag within it.
	TargetDrainTime time.Duration
	// ActivationLag: a consumer at zero replicas stays there while its lag is below it.
	ActivationLag int64
	// LimitToPartitionsWithLag caps the replicas at the partitions that have lag (at
	// least one): when all the lag sits on one partition, more pods cannot help.
	LimitToPartitionsWithLag bool
}

// Recommendation is a past desired replica count, kept for the stabilization window.
type Recommendation struct {
	At       time.Time
	Replicas int32
}

// Input is everything a scaling decision depends on.
type Input struct {
	Now       time.Time
	Current   int32
	Suspended bool
	Policy    Policy
	// Lag is the latest measurement; LagErr is set instead when it could not be read.
	Lag    Lag
	LagErr error
	// AwaitingLag says no measurement exists yet (the first one is under way).
	AwaitingLag bool
	// Previous is the measurement before Lag (nil when there is none).
	Previous *Lag
	History  []Recommendation
	// Rates are the drain-time policy's measurements, Lag included (Rates.Observe).
	Rates Rates
	// Ready is the number of ready pods; fewer than Current means pods are starting or
	// restarting (the group rebalances), and the drain-time policy never scales down then.
	Ready int32
}

// Condition is a status condition the decision sets.
type Condition struct {
	Status  bool
	Reason  string
	Message string
}

// Reasons of the scaling conditions.
const (
	ReasonValidLag          = "ValidLag"
	ReasonLagUnavailable    = "LagUnavailable"
	ReasonAwaitingLag       = "AwaitingLag"
	ReasonSuspended         = "Suspended"
	ReasonWithinLimits      = "DesiredWithinRange"
	ReasonPartitionLimit    = "PartitionLimit"
	ReasonMaxReplicas       = "TooManyReplicas"
	ReasonMinReplicas       = "TooFewReplicas"
	ReasonScaleDownDeferred = "ScaleDownStabilized"
	ReasonRecordsWaiting    = "RecordsWaiting"
	ReasonNoPosition        = "NoCommittedPosition"
	ReasonBelowActivation   = "BelowActivationLag"
	ReasonPartitionsWithLag = "PartitionsWithLag"
	ReasonDrainTarget       = "DrainTargetUnreachable"
	ReasonScaleDownHeld     = "ScaleDownHeld"
)

// Decision is the outcome: the replicas to run and why.
type Decision struct {
	Desired int32
	// ScalingLag is the lag the decision used (after excluding stuck partitions).
	ScalingLag int64
	// Excluded lists the stuck partitions left out.
	Excluded       []int32
	ScalingActive  Condition
	ScalingLimited Condition
	// History is the recommendations to keep for the next decision: the window's peaks,
	// oldest first, ending with this decision's recommendation (see windowPeaks).
	History []Recommendation
	// Drain is the drain-time policy's plan (nil under lagPerReplica).
	Drain *DrainPlan
}

// Decide computes the desired replicas:
// clamp(ceil(lag / lagPerReplica), minReplicas, min(maxReplicas, partitions)), up at
// once, down only when every recommendation of the stabilization window agrees.
// Suspension wins over everything; a lag that could not be read keeps the current
// replicas (it is never taken for zero lag).
func Decide(in Input) Decision {
	p := in.Policy
	if in.Suspended {
		return Decision{Desired: 0,
			ScalingActive:  Condition{false, ReasonSuspended, "the consumer is suspended: scaled to zero"},
			ScalingLimited: Condition{false, ReasonSuspended, "the consumer is suspended"},
		}
	}
	if in.AwaitingLag {
		return Decision{Desired: in.Current, History: in.History,
			ScalingActive:  Condition{false, ReasonAwaitingLag, fmt.Sprintf("keeping %d replicas until the first lag measurement, which is under way", in.Current)},
			ScalingLimited: Condition{false, ReasonAwaitingLag, "no scaling decision without a lag"},
		}
	}
	if in.LagErr != nil {
		return Decision{Desired: in.Current, History: in.History,
			ScalingActive:  Condition{false, ReasonLagUnavailable, fmt.Sprintf("keeping %d replicas: the lag could not be read: %v", in.Current, in.LagErr)},
			ScalingLimited: Condition{false, ReasonLagUnavailable, "no scaling decision without a lag"},
		}
	}
	d := Decision{}
	d.ScalingLag, d.Excluded = scalingLag(in)
	partitions := int32(len(in.Lag.Partitions))
	limit, limitReason := p.MaxReplicas, ReasonMaxReplicas
	if partitions < limit {
		limit, limitReason = partitions, ReasonPartitionLimit
	}
	if lagging := partitionsWithLag(in.Lag, d.Excluded); p.LimitToPartitionsWithLag && max(lagging, 1) < limit {
		limit, limitReason = max(lagging, 1), ReasonPartitionsWithLag
	}
	// Zero replicas only when nothing waits: a consumer at zero moves no commit, so lag it
	// left behind (stuck partitions included) would wait for ever, and a latest group
	// without a position would skip what arrives before a member joins. Below the
	// activation lag, a consumer at zero is left there (its owner's choice); the missing
	// position still wakes it, since what arrives meanwhile would be lost.
	floor, floorWhy := p.MinReplicas, ""
	switch {
	case floor > 0:
	case in.Lag.Total > 0 && in.Current == 0 && in.Lag.Total < p.ActivationLag && len(in.Lag.Unpositioned) == 0:
		floorWhy = ReasonBelowActivation
	case in.Lag.Total > 0:
		floor, floorWhy = 1, ReasonRecordsWaiting
	case len(in.Lag.Unpositioned) > 0:
		floor, floorWhy = 1, ReasonNoPosition
	}
	raw := int32(0)
	if p.TargetDrainTime > 0 {
		plan := PlanDrain(in.Rates, d.ScalingLag, maxPartitionLag(in.Lag, d.Excluded), p.TargetDrainTime, partitions, limit, 0, in.Current)
		if floorWhy == ReasonBelowActivation {
			plan = DrainPlan{Replicas: 0, Met: true, Fallback: plan.Fallback}
		}
		d.Drain, raw = &plan, plan.Replicas
	} else if d.ScalingLag > 0 && p.LagPerReplica > 0 && floorWhy != ReasonBelowActivation {
		need := (d.ScalingLag + p.LagPerReplica - 1) / p.LagPerReplica
		raw = int32(min(need, int64(1)<<30))
	}
	rec := max(raw, floor)
	d.ScalingLimited = Condition{false, ReasonWithinLimits, fmt.Sprintf("%d replicas for a lag of %d", rec, d.ScalingLag)}
	switch {
	case floorWhy == ReasonBelowActivation:
		d.ScalingLimited = Condition{true, ReasonBelowActivation, fmt.Sprintf("a lag of %d is below activationLag %d: the consumer stays at zero replicas", in.Lag.Total, p.ActivationLag)}
	case raw < floor && floorWhy == ReasonRecordsWaiting:
		d.ScalingLimited = Condition{true, ReasonRecordsWaiting, fmt.Sprintf("%d records wait (stuck partitions included): one replica at least, though minReplicas is 0", in.Lag.Total)}
	case raw < floor && floorWhy == ReasonNoPosition:
		d.ScalingLimited = Condition{true, ReasonNoPosition, fmt.Sprintf("partitions %v have no committed position and the group starts at the latest offset: one replica joins to take it, or records arriving meanwhile would be skipped", in.Lag.Unpositioned)}
	case d.Drain != nil && !d.Drain.Met:
		d.ScalingLimited = Condition{true, ReasonDrainTarget, fmt.Sprintf("%s (the limit: %s)", d.Drain.describe(in.Rates, d.ScalingLag, p.TargetDrainTime), limitText(limitReason, limit, p.MaxReplicas))}
	case rec > limit && limitReason == ReasonPartitionLimit:
		d.ScalingLimited = Condition{true, ReasonPartitionLimit, fmt.Sprintf("a lag of %d asks for %d replicas, capped at the topic's %d partitions (more consumers than partitions would idle)", d.ScalingLag, rec, partitions)}
		rec = limit
	case rec > limit && limitReason == ReasonPartitionsWithLag:
		d.ScalingLimited = Condition{true, ReasonPartitionsWithLag, fmt.Sprintf("a lag of %d asks for %d replicas, capped at the %d partitions that have lag (more pods could not help)", d.ScalingLag, rec, limit)}
		rec = limit
	case rec > limit:
		d.ScalingLimited = Condition{true, ReasonMaxReplicas, fmt.Sprintf("a lag of %d asks for %d replicas, capped at maxReplicas %d", d.ScalingLag, rec, p.MaxReplicas)}
		rec = limit
	case raw < p.MinReplicas:
		d.ScalingLimited = Condition{true, ReasonMinReplicas, fmt.Sprintf("a lag of %d asks for %d replicas, held at minReplicas %d", d.ScalingLag, raw, p.MinReplicas)}
	}
	// The drain-time policy never scales down on what it does not trust: while records
	// wait and the pod rate rests on too few busy intervals, or while pods are starting
	// or restarting (the group rebalances and the rates of the interval mean little).
	held := ""
	if d.Drain != nil && rec < in.Current && floorWhy != ReasonBelowActivation {
		switch {
		case in.Ready < in.Current:
			held = fmt.Sprintf("only %d of %d pods are ready", in.Ready, in.Current)
		case d.ScalingLag > 0 && in.Rates.Samples < MinPodRateSamples:
			held = fmt.Sprintf("the pod rate rests on %d busy intervals, fewer than %d", in.Rates.Samples, MinPodRateSamples)
		}
		if held != "" {
			rec = in.Current
		}
	}

	// Stabilization: the desired count is the highest recommendation of the window.
	d.History = windowPeaks(in.History, in.Now, p.ScaleDownStabilization, rec)
	d.Desired = d.History[0].Replicas
	msg := fmt.Sprintf("lag %d over %d partitions", d.ScalingLag, partitions)
	if len(d.Excluded) > 0 {
		msg += fmt.Sprintf(" (stuck partitions %v left out)", d.Excluded)
	}
	if d.Drain != nil {
		msg += "; " + d.Drain.describe(in.Rates, d.ScalingLag, p.TargetDrainTime)
	}
	if held != "" {
		msg += fmt.Sprintf("; no scale down below %d while %s", in.Current, held)
		d.ScalingActive = Condition{true, ReasonScaleDownHeld, msg}
	} else if d.Desired > rec {
		msg += fmt.Sprintf("; scale down to %d deferred by the %s stabilization window", rec, p.ScaleDownStabilization)
		d.ScalingActive = Condition{true, ReasonScaleDownDeferred, msg}
	} else {
		d.ScalingActive = Condition{true, ReasonValidLag, msg}
	}
	return d
}

// maxPartitionLag is the most lag on one partition, the excluded (stuck) ones left out.
func maxPartitionLag(l Lag, excluded []int32) int64 {
	var m int64
	for _, p := range l.Partitions {
		if !slices.Contains(excluded, p.Partition) {
			m = max(m, p.Lag)
		}
	}
	return m
}

// partitionsWithLag counts the partitions with lag, the excluded (stuck) ones left out.
func partitionsWithLag(l Lag, excluded []int32) int32 {
	var n int32
	for _, p := range l.Partitions {
		if p.Lag > 0 && !slices.Contains(excluded, p.Partition) {
			n++
		}
	}
	return n
}

func limitText(reason string, limit, maxReplicas int32) string {
	switch reason {
	case ReasonPartitionLimit:
		return fmt.Sprintf("the topic's %d partitions", limit)
	case ReasonPartitionsWithLag:
		return fmt.Sprintf("the %d partitions that have lag", limit)
	}
	return fmt.Sprintf("maxReplicas %d", maxReplicas)
}

// windowPeaks keeps of the recommendations of the window only those that can still be its
// highest: each higher than every later one, so the first is the highest. A recommendation
// lower than (or equal to) a later one never can, so the kept ones change only when the
// recommendation does or one leaves the window, not at every measurement: what a new leader
// needs to honour the window fits in the status (Decision.Peaks) without a write per poll.
// The result is ordered oldest first and ends with now's recommendation, rec.
func windowPeaks(history []Recommendation, now time.Time, window time.Duration, rec int32) []Recommendation {
	kept := make([]Recommendation, 0, len(history)+1)
	for _, h := range slices.SortedFunc(slices.Values(history), func(a, b Recommendation) int { return a.At.Compare(b.At) }) {
		if now.Sub(h.At) >= window { // (a time ahead of now, from another leader's clock, stays)
			continue
		}
		kept = dropDominated(kept, h.Replicas)
		kept = append(kept, h)
	}
	kept = dropDominated(kept, rec)
	return append(kept, Recommendation{At: now, Replicas: rec})
}

// dropDominated removes from the end of kept the recommendations not higher than replicas.
func dropDominated(kept []Recommendation, replicas int32) []Recommendation {
	for len(kept) > 0 && kept[len(kept)-1].Replicas <= replicas {
		kept = kept[:len(kept)-1]
	}
	return kept
}

// Recommended returns the latest recommendation (the replicas this measurement asks for),
// false when the decision made none (suspended, or no lag to decide on).
func (d Decision) Recommended() (int32, bool) {
	if len(d.History) == 0 {
		return 0, false
	}
	return d.History[len(d.History)-1].Replicas, true
}

// Peaks returns the recommendations of the window higher than the latest one (each with
// the last time it was made): what holds a scale-down back. The operator keeps them in
// the AtlasConsumer's status, so they survive a change of leader.
func (d Decision) Peaks() []Recommendation {
	if len(d.History) == 0 {
		return nil
	}
	return d.History[:len(d.History)-1]
}

// scalingLag is the total lag, without stuck partitions when the policy says so.
func scalingLag(in Input) (int64, []int32) {
	if !in.Policy.ExcludeStuckPartitions {
		return in.Lag.Total, nil
	}
	excluded := StuckPartitions(in.Previous, in.Lag)
	var total int64
	for _, pl := range in.Lag.Partitions {
		if !slices.Contains(excluded, pl.Partition) {
			total += pl.Lag
		}
	}
	return total, excluded
}

// StuckPartitions are the partitions whose committed offset did not move between the two
// measurements although they had lag at both (none without a previous measurement).
func StuckPartitions(previous *Lag, current Lag) []int32 {
	if previous == nil {
		return nil
	}
	prev := map[int32]PartitionLag{}
	for _, pl := range previous.Partitions {
		prev[pl.Partition] = pl
	}
	var stuck []int32
	for _, pl := range current.Partitions {
		before, ok := prev[pl.Partition]
		if ok && pl.Lag > 0 && before.Lag > 0 && pl.Committed >= 0 && pl.Committed == before.Committed {
			stuck = append(stuck, pl.Partition)
		}
	}
	return stuck
}
