package eventgen

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

// TestStreamIsValidAndConsistent: every generated event decodes as a known v1 envelope,
// all ten families appear, and items are never touched before creation or after deletion.
func TestStreamIsValidAndConsistent(t *testing.T) {
	g := New(42)
	seen := map[event.Type]int{}
	live := map[uuid.UUID]bool{}
	deleted := map[uuid.UUID]bool{}
	ids := map[uuid.UUID]bool{}
	for i := range 20000 {
		env, err := g.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		raw, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		back, err := event.Decode(raw)
		if err != nil {
			t.Fatalf("event %d does not decode: %v\n%s", i, err, raw)
		}
		if !back.Known() {
			t.Fatalf("event %d is not a known v1 event: %s", i, raw)
		}
		if ids[env.EventID] {
			t.Fatalf("duplicate event id %s", env.EventID)
		}
		ids[env.EventID] = true
		seen[env.EventType]++
		id := env.Entity.ID
		switch env.EventType {
		case event.ItemCreated:
			if live[id] || deleted[id] {
				t.Fatalf("item %s created twice", id)
			}
			live[id] = true
		case event.ItemUpdated, event.ItemDeleted:
			if !live[id] {
				t.Fatalf("%s of item %s that is not live", env.EventType, id)
			}
			if env.EventType == event.ItemDeleted {
				delete(live, id)
				deleted[id] = true
			}
		}
	}
	for _, typ := range event.Types() {
		if seen[typ] == 0 {
			t.Errorf("no %s in 20000 events: %v", typ, seen)
		}
	}
	if seen[event.ItemCreated]+seen[event.ItemUpdated]+seen[event.ItemDeleted] < 10000 {
		t.Errorf("items should dominate the traffic: %v", seen)
	}
}
