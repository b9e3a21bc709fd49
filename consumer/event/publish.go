package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/names"
)

// Record header names set on every published event, so consumers can filter
// without decoding JSON.
const (
	HeaderEventType    = "event_type"
	HeaderEventVersion = "event_version"
	HeaderTraceID      = "trace_id"
)

// Record turns an envelope into a Kafka record for topic: the value is the envelope's
// JSON (its Raw bytes when it was decoded, so unknown fields survive), the key its
// PartitionKey, and the headers event_type, event_version and trace_id (when set).
func Record(topic string, env *Envelope) (*kgo.Record, error) {
	value := env.Raw
	if value == nil {
		var err error
		if value, err = json.Marshal(env); err != nil {
			return nil, fmt.Errorf("marshal event %s: %w", env.EventID, err)
		}
	}
	headers := []kgo.RecordHeader{
		{Key: HeaderEventType, Value: []byte(env.EventType)},
		{Key: HeaderEventVersion, Value: []byte(strconv.Itoa(env.Version))},
	}
	if env.TraceID != nil {
		headers = append(headers, kgo.RecordHeader{Key: HeaderTraceID, Value: []byte(*env.TraceID)})
	}
	return &kgo.Record{
		Topic:   topic,
		Key:     []byte(env.PartitionKey()),
		Value:   value,
		Headers: headers,
	}, nil
}

// Header returns the value of the first header named key, or nil.
func Header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// Publisher publishes envelopes to one topic with a franz-go client. The client should
// use a key-hashing partitioner (franz-go's default) so a collection's events stay in
// one partition, in order.
type Publisher struct {
	client *kgo.Client
	topic  string
}

// NewPublisher returns a Publisher writing to topic (names.Topic when empty).
func NewPublisher(client *kgo.Client, topic string) *Publisher {
	if topic == "" {
		topic = names.Topic
	}
	return &Publisher{client: client, topic: topic}
}

// Topic returns the topic the publisher writes to.
func (p *Publisher) Topic() string { return p.topic }

// Publish validates and produces the envelopes and waits until the broker acknowledged
// all of them. It returns the first error; on error some records may have been written
// (at-least-once: consumers deduplicate by event_id).
func (p *Publisher) Publish(ctx context.Context, envs ...*Envelope) error {
	records := make([]*kgo.Record, 0, len(envs))
	for _, env := range envs {
		if err := Validate(env); err != nil {
			return fmt.Errorf("publish event %s: %w", env.EventID, err)
		}
		r, err := Record(p.topic, env)
		if err != nil {
			return err
		}
		records = append(records, r)
	}
	if err := p.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("publish %d events to %s: %w", len(records), p.topic, err)
	}
	return nil
}
