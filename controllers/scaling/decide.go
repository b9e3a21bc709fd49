package scaling

import (
	"fmt"
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
	// History is the recommendations to keep for the next decision.
	History []Recommendation
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
	raw := int32(0)
	if d.ScalingLag > 0 && p.LagPerReplica > 0 {
		need := (d.ScalingLag + p.LagPerReplica - 1) / p.LagPerReplica
		raw = int32(min(need, int64(1)<<30))
	}
	// Zero replicas only when nothing waits: a consumer at zero moves no commit, so lag it
	// left behind (stuck partitions included) would wait for ever, and a latest group
	// without a position would skip what arrives before a member joins.
	floor, floorWhy := p.MinReplicas, ""
	switch {
	case floor > 0:
	case in.Lag.Total > 0:
		floor, floorWhy = 1, ReasonRecordsWaiting
	case len(in.Lag.Unpositioned) > 0:
		floor, floorWhy = 1, ReasonNoPosition
	}
	rec := max(raw, floor)
	d.ScalingLimited = Condition{false, ReasonWithinLimits, fmt.Sprintf("%d replicas for a lag of %d", rec, d.ScalingLag)}
	switch {
	case raw < floor && floorWhy == ReasonRecordsWaiting:
		d.ScalingLimited = Condition{true, ReasonRecordsWaiting, fmt.Sprintf("%d records wait (stuck partitions included): one replica at least, though minReplicas is 0", in.Lag.Total)}
	case raw < floor && floorWhy == ReasonNoPosition:
		d.ScalingLimited = Condition{true, ReasonNoPosition, fmt.Sprintf("partitions %v have no committed position and the group starts at the latest offset: one replica joins to take it, or records arriving meanwhile would be skipped", in.Lag.Unpositioned)}
	case rec > limit && limitReason == ReasonPartitionLimit:
		d.ScalingLimited = Condition{true, ReasonPartitionLimit, fmt.Sprintf("a lag of %d asks for %d replicas, capped at the topic's %d partitions (more consumers than partitions would idle)", d.ScalingLag, rec, partitions)}
		rec = limit
	case rec > limit:
		d.ScalingLimited = Condition{true, ReasonMaxReplicas, fmt.Sprintf("a lag of %d asks for %d replicas, capped at maxReplicas %d", d.ScalingLag, rec, p.MaxReplicas)}
		rec = limit
	case raw < p.MinReplicas:
		d.ScalingLimited = Condition{true, ReasonMinReplicas, fmt.Sprintf("a lag of %d asks for %d replicas, held at minReplicas %d", d.ScalingLag, raw, p.MinReplicas)}
	}

	// Stabilization: the desired count is the highest recommendation of the window.
	d.History = []Recommendation{{At: in.Now, Replicas: rec}}
	d.Desired = rec
	for _, h := range in.History {
		if in.Now.Sub(h.At) < p.ScaleDownStabilization {
			d.History = append(d.History, h)
			d.Desired = max(d.Desired, h.Replicas)
		}
	}
	msg := fmt.Sprintf("lag %d over %d partitions", d.ScalingLag, partitions)
	if len(d.Excluded) > 0 {
		msg += fmt.Sprintf(" (stuck partitions %v left out)", d.Excluded)
	}
	if d.Desired > rec {
		msg += fmt.Sprintf("; scale down to %d deferred by the %s stabilization window", rec, p.ScaleDownStabilization)
		d.ScalingActive = Condition{true, ReasonScaleDownDeferred, msg}
	} else {
		d.ScalingActive = Condition{true, ReasonValidLag, msg}
	}
	return d
}

// scalingLag is the total lag, without stuck partitions when the policy says so.
func scalingLag(in Input) (int64, []int32) {
	if !in.Policy.ExcludeStuckPartitions || in.Previous == nil {
		return in.Lag.Total, nil
	}
	prev := map[int32]PartitionLag{}
	for _, pl := range in.Previous.Partitions {
		prev[pl.Partition] = pl
	}
	var total int64
	var excluded []int32
	for _, pl := range in.Lag.Partitions {
		before, ok := prev[pl.Partition]
		if ok && pl.Lag > 0 && before.Lag > 0 && pl.Committed >= 0 && pl.Committed == before.Committed {
			excluded = append(excluded, pl.Partition)
			continue
		}
		total += pl.Lag
	}
	return total, excluded
}
