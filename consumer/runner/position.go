package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// takeLatestPositions runs when partitions are assigned, before franz-go fetches the
// group's offsets. For a group that starts at the latest offset it commits the end offset
// of each assigned partition the group never committed: without it, the start position
// exists only in this member, so records arriving while no member runs (scaled to zero,
// all pods restarting) would be skipped by the next member's reset to the end, and the
// operator could not tell them from no lag. A failure is only logged: franz-go then
// resets to the end as before.
func (r *Runner) takeLatestPositions(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[r.cfg.Topic]
	if r.cfg.StartOffset != "latest" || len(parts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.commitLatest(ctx, cl, parts); err != nil {
		r.log.Warn("could not commit the start position of newly assigned partitions; they start at the end when fetched", "group", r.cfg.Group, "error", err)
	}
}

func (r *Runner) commitLatest(ctx context.Context, cl *kgo.Client, parts []int32) error {
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsetsForTopics(ctx, r.cfg.Group, r.cfg.Topic)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, r.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	positions := map[int32]kgo.EpochOffset{}
	for _, p := range parts {
		if c, ok := committed.Lookup(r.cfg.Topic, p); ok && c.Err == nil && c.At >= 0 {
			continue
		}
		if e, ok := ends.Lookup(r.cfg.Topic, p); ok {
			positions[p] = kgo.EpochOffset{Epoch: -1, Offset: e.Offset}
		}
	}
	if len(positions) == 0 {
		return nil
	}
	var commitErr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{r.cfg.Topic: positions},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				commitErr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil && commitErr == nil {
						commitErr = fmt.Errorf("partition %d: %w", p.Partition, err)
					}
				}
			}
		})
	if commitErr != nil {
		return fmt.Errorf("commit: %w", commitErr)
	}
	r.log.Info("committed the start position of a group starting at the latest offset", "group", r.cfg.Group, "positions", len(positions))
	return nil
}
