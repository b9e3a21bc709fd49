package event_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

// BenchmarkDecodeValidate measures decode+validate of a typical ItemUpdated envelope and
// reports events/s (one goroutine = one core).
func BenchmarkDecodeValidate(b *testing.B) {
	col := uuid.New()
	env, err := event.New(event.ItemUpdated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &col},
		map[string]any{"title": "Quarterly report", "content": "Revenue grew in every region; see the appendix for details.",
			"source_url": "https://example.com/reports/q3.pdf", "tags": []string{"finance", "q3"}},
		event.WithActor(uuid.New()), event.WithTrace("4bf92f3577b34da6a3ce929d0e0e4736"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := event.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkJSONSchemaValidate measures the reference JSON Schema over the same envelope,
// for comparison with the Go validator.
func BenchmarkJSONSchemaValidate(b *testing.B) {
	s := compileSchema(b)
	col := uuid.New()
	env, err := event.New(event.ItemUpdated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &col},
		map[string]any{"title": "Quarterly report"})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	b.ReportAllocs()
	for b.Loop() {
		var inst any
		if err := json.Unmarshal(raw, &inst); err != nil {
			b.Fatal(err)
		}
		if err := s.Validate(inst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
