package runner

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// lagInterval is how often a consumer measures the lag of its partitions (a variable for
// the tests).
var lagInterval = 5 * time.Second

// measureLag sets atlas_consumer_partition_lag for every partition this member owns, every
// lagInterval, until ctx ends: the partition's end offset minus the group's committed offset,
// the records not yet done, as the operator and Kafka's own tools count them. (Setting it
// from each poll, for the partitions the poll returned, understated a burst: the partitions
// not polled yet kept their old value, and the lag alerts summed 2,090 for ~11,000 records.)
func (r *Runner) measureLag(ctx context.Context) {
	adm := kadm.NewClient(r.client)
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		r.updateLag(ctx, adm)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) updateLag(ctx context.Context, adm *kadm.Client) {
	r.assignedMu.Lock()
	owned := make([]int32, 0, len(r.assigned))
	for p := range r.assigned {
		owned = append(owned, p)
	}
	r.assignedMu.Unlock()
	if len(owned) == 0 {
		return
	}
	slices.Sort(owned)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(rctx, r.cfg.Topic)
	if err != nil {
		return // an unreachable broker is the kafka dependency's report; the gauge keeps its value
	}
	committed, err := adm.FetchOffsets(rctx, r.cfg.Group)
	if err != nil {
		return
	}
	var starts kadm.ListedOffsets
	for _, p := range owned {
		end, ok := ends.Lookup(r.cfg.Topic, p)
		if !ok || end.Err != nil {
			continue
		}
		pos := int64(-1)
		if c, ok := committed.Lookup(r.cfg.Topic, p); ok && c.Err == nil && c.At >= 0 {
			pos = c.At
		}
		if pos < 0 { // nothing committed yet: where the group starts
			if r.cfg.StartOffset == "latest" {
				pos = end.Offset
			} else {
				if starts == nil {
					if starts, err = adm.ListStartOffsets(rctx, r.cfg.Topic); err != nil {
						return
					}
				}
				start, ok := starts.Lookup(r.cfg.Topic, p)
				if !ok || start.Err != nil {
					continue
				}
				pos = start.Offset
			}
		}
		r.metrics.Lag.WithLabelValues(r.cfg.Topic, strconv.Itoa(int(p))).Set(float64(max(end.Offset-pos, 0)))
	}
}
