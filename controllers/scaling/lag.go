// Package scaling measures a consumer group's lag and decides how many consumer
// replicas it needs. Reading is the only I/O (ReadLag); the lag arithmetic and the
// replica decision are pure functions, table-tested.
package scaling

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// PartitionLag is one partition's position.
type PartitionLag struct {
	Partition int32
	// Committed is the group's committed offset, -1 when the group never committed.
	Committed int64
	// Start and End are the partition's log start offset (after retention) and end offset.
	Start, End int64
	// Lag is the records between the group's position and the end.
	Lag int64
}

// Lag is a group's lag on one topic.
type Lag struct {
	Total      int64
	Partitions []PartitionLag
	MeasuredAt time.Time
	// Unpositioned are the partitions where a group that starts at the latest offset has
	// no commit yet: it takes its position there only when a member joins, and records
	// arriving before that would never be read.
	Unpositioned []int32
}

// Offsets are the raw numbers lag is computed from, per partition.
type Offsets struct {
	// Committed holds the partitions the group committed; a partition absent (or
	// with a negative offset) has no commit.
	Committed map[int32]int64
	Start     map[int32]int64
	End       map[int32]int64
}

// ComputeLag turns offsets into lag. A partition's lag is end - committed. A committed
// offset below the log start (deleted by retention) is reset by the consumer to where
// new groups start: the log start for earliest (lag end - start), the end for latest
// (lag 0). A partition without a commit lags end - start when new groups start at the
// earliest offset, and 0 when they start at the latest (it is then Unpositioned).
func ComputeLag(o Offsets, startEarliest bool, now time.Time) Lag {
	parts := make([]int32, 0, len(o.End))
	for p := range o.End {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	out := Lag{MeasuredAt: now, Partitions: make([]PartitionLag, 0, len(parts))}
	for _, p := range parts {
		pl := PartitionLag{Partition: p, Committed: -1, Start: o.Start[p], End: o.End[p]}
		c, ok := o.Committed[p]
		switch {
		case ok && c >= 0 && c < pl.Start && !startEarliest:
			pl.Committed = c // the consumer resets it to the end
		case ok && c >= 0:
			pl.Committed = c
			pl.Lag = pl.End - max(c, pl.Start)
		case startEarliest:
			pl.Lag = pl.End - pl.Start
		default:
			out.Unpositioned = append(out.Unpositioned, p)
		}
		pl.Lag = max(pl.Lag, 0)
		out.Total += pl.Lag
		out.Partitions = append(out.Partitions, pl)
	}
	return out
}

// ReadLag reads the group's committed offsets (OffsetFetch) and the topic's start and end
// offsets (ListOffsets) and computes the lag. It does not use DescribeGroups, whose
// answers differ between brokers for next-generation (KIP-848) groups. Any error, for
// any partition, is an error: a failed read is never zero lag.
func ReadLag(ctx context.Context, adm *kadm.Client, group, topic string, startEarliest bool) (Lag, error) {
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		// A group no consumer has joined yet has no commits (Kafka answers with none,
		// other brokers with this error): its lag follows the start position.
		committed, err = kadm.OffsetResponses{}, nil
	case err != nil:
		return Lag{}, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return Lag{}, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return Lag{}, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	o := Offsets{Committed: map[int32]int64{}, Start: map[int32]int64{}, End: map[int32]int64{}}
	starts.Each(func(l kadm.ListedOffset) { o.Start[l.Partition] = l.Offset })
	ends.Each(func(l kadm.ListedOffset) { o.End[l.Partition] = l.Offset })
	if len(o.End) == 0 {
		return Lag{}, fmt.Errorf("topic %s has no partitions (does it exist?)", topic)
	}
	var errs []error
	for p := range o.End {
		r, ok := committed.Lookup(topic, p)
		if !ok {
			continue
		}
		if r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			errs = append(errs, fmt.Errorf("partition %d: %w", p, r.Err))
			continue
		}
		if r.Err == nil {
			o.Committed[p] = r.At
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Lag{}, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	return ComputeLag(o, startEarliest, time.Now()), nil
}
