package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/internal/backoff"
)

// Headers a dead letter carries on top of the original record's headers.
const (
	HeaderError           = "atlas.dlq.error"
	HeaderErrorKind       = "atlas.dlq.error.kind"
	HeaderSourceTopic     = "atlas.dlq.source.topic"
	HeaderSourcePartition = "atlas.dlq.source.partition"
	HeaderSourceOffset    = "atlas.dlq.source.offset"
	HeaderConsumerGroup   = "atlas.dlq.consumer.group"
	HeaderFailedAt        = "atlas.dlq.failed.at"
	// HeaderValueDropped is set (to the original size) when the original value was too
	// large for the dead-letter topic and was left out.
	HeaderValueDropped = "atlas.dlq.value.dropped.bytes"
)

// deadLetter writes every rejection to the dead-letter topic, retrying until all are
// written (or ctx ends). Only then may the batch's offsets be committed.
func (r *Runner) deadLetter(ctx context.Context, rejected []Rejection) error {
	pending := make([]*kgo.Record, len(rejected))
	for i, rj := range rejected {
		pending[i] = r.deadLetterRecord(rj)
		attrs := []any{"kind", rj.Kind, "reason", rj.Reason,
			"topic", rj.Record.Topic, "partition", rj.Record.Partition, "offset", rj.Record.Offset,
			"dead_letter_topic", r.cfg.DeadLetterTopic}
		if rj.Event != nil {
			attrs = append(attrs, "event_id", rj.Event.EventID, "trace_id", rj.Event.Trace())
		}
		r.log.Error("dead-lettering a record", attrs...)
	}
	err := backoff.Retry(ctx, r.cfg.Backoff, r.onRetry(DependencyDeadLetter), func(ctx context.Context) error {
		results := r.client.ProduceSync(ctx, pending...)
		var failed []*kgo.Record
		var firstErr error
		for _, res := range results {
			err := res.Err
			if tooLarge(err) {
				// A batch can be too large because of one record in it: try this one alone.
				err = r.produceAlone(ctx, res.Record)
			}
			if err == nil {
				continue
			}
			failed = append(failed, res.Record)
			if firstErr == nil {
				firstErr = err
			}
		}
		pending = failed
		if firstErr != nil {
			return fmt.Errorf("write %d records to dead-letter topic %s: %w", len(failed), r.cfg.DeadLetterTopic, firstErr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.ready.Set(DependencyDeadLetter, nil)
	for _, rj := range rejected {
		r.metrics.DeadLettered.WithLabelValues(rj.Kind).Inc()
	}
	return nil
}

// produceAlone writes one dead letter on its own and, if even alone it is too large for
// the dead-letter topic, writes it without the original value.
func (r *Runner) produceAlone(ctx context.Context, rec *kgo.Record) error {
	err := r.client.ProduceSync(ctx, rec).FirstErr()
	if tooLarge(err) {
		r.log.Warn("dead letter too large for the dead-letter topic; writing it without the original value",
			"bytes", len(rec.Value), "dead_letter_topic", r.cfg.DeadLetterTopic)
		err = r.client.ProduceSync(ctx, withoutValue(rec)).FirstErr()
	}
	return err
}

func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// deadLetterRecord copies the original key, value and headers and adds why and where from.
func (r *Runner) deadLetterRecord(rj Rejection) *kgo.Record {
	src := rj.Record
	headers := make([]kgo.RecordHeader, 0, len(src.Headers)+7)
	headers = append(headers, src.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(rj.Reason)},
		kgo.RecordHeader{Key: HeaderErrorKind, Value: []byte(rj.Kind)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		kgo.RecordHeader{Key: HeaderConsumerGroup, Value: []byte(r.cfg.Group)},
		kgo.RecordHeader{Key: HeaderFailedAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: r.cfg.DeadLetterTopic, Key: src.Key, Value: src.Value, Headers: headers}
}

// withoutValue is the fallback for a value the dead-letter topic cannot take: the
// headers still say what failed and where the original is.
func withoutValue(rec *kgo.Record) *kgo.Record {
	out := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Headers: append([]kgo.RecordHeader(nil), rec.Headers...)}
	out.Headers = append(out.Headers, kgo.RecordHeader{Key: HeaderValueDropped, Value: []byte(strconv.Itoa(len(rec.Value)))})
	return out
}
