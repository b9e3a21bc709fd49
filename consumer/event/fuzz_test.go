package event_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

// FuzzDecode: the decoder never panics, every error explains itself, it gives the same
// verdict as the JSON Schema (parsed as I-JSON, as the schema asks), whatever it accepts
// is valid JSON by encoding/json's rules and survives a marshal/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	raw, err := os.ReadFile("testdata/corpus.json")
	if err != nil {
		f.Fatal(err)
	}
	var cases []corpusCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		f.Add([]byte(c.Envelope))
	}
	f.Add([]byte("not json"))
	f.Add([]byte(`{"version":1e400}`))
	s := compileSchema(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := event.Decode(in)
		if serr := schemaVerdict(s, in); (err == nil) != (serr == nil) {
			t.Fatalf("the decoder and the JSON Schema disagree on %q:\ndecoder: %v\nschema: %v", in, err, serr)
		}
		if err != nil {
			if env != nil {
				t.Fatal("non-nil envelope with an error")
			}
			if err.Error() == "" || err.Error() == "invalid event envelope: " {
				t.Fatalf("empty error for %q", in)
			}
			return
		}
		// The decoder parses with a faster JSON library than the standard one: it must
		// never accept what the standard library calls invalid JSON.
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		out, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("marshal accepted envelope: %v", err)
		}
		back, err := event.Decode(out)
		if err != nil {
			t.Fatalf("re-decode of %s failed: %v (input %q)", out, err, in)
		}
		if back.EventID != env.EventID || back.EventType != env.EventType || back.Version != env.Version ||
			!back.OccurredAt.Equal(env.OccurredAt) || back.Entity.ID != env.Entity.ID {
			t.Fatalf("round trip changed %q into %s", in, out)
		}
	})
}
