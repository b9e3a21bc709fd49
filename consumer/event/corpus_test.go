package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/event/schema"
)

// corpusCase is one example of testdata/corpus.json. An example without problems is
// valid; Unknown marks valid envelopes the consumers do not fully understand.
type corpusCase struct {
	Name     string          `json:"name"`
	Problems []string        `json:"problems"`
	Unknown  bool            `json:"unknown"`
	Envelope json.RawMessage `json:"envelope"`
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/corpus.json")
	if err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	var cases []corpusCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("parse corpus: %v", err)
	}
	if len(cases) < 20 {
		t.Fatalf("corpus has %d examples, expected at least 20", len(cases))
	}
	return cases
}

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.EnvelopeV1))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schema.EnvelopeV1ID, doc); err != nil {
		t.Fatalf("add schema: %v", err)
	}
	s, err := c.Compile(schema.EnvelopeV1ID)
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

// TestCorpusGoValidator runs the Go decoder over the shared corpus: valid examples decode
// (with the expected Known flag), invalid ones fail naming exactly the expected fields.
func TestCorpusGoValidator(t *testing.T) {
	for _, tc := range loadCorpus(t) {
		t.Run(tc.Name, func(t *testing.T) {
			env, err := event.Decode(tc.Envelope)
			if len(tc.Problems) == 0 {
				if err != nil {
					t.Fatalf("valid example rejected: %v", err)
				}
				if env.Known() == tc.Unknown {
					t.Fatalf("Known() = %v, want %v", env.Known(), !tc.Unknown)
				}
				if !bytes.Equal(env.Raw, tc.Envelope) {
					t.Fatalf("Raw does not hold the input bytes")
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid example accepted; expected problems with %v", tc.Problems)
			}
			var inv *event.InvalidError
			if !asInvalid(err, &inv) {
				t.Fatalf("error is %T, want *event.InvalidError: %v", err, err)
			}
			var fields []string
			for _, p := range inv.Problems {
				fields = append(fields, p.Field)
				if p.Reason == "" {
					t.Errorf("problem with %q has no reason", p.Field)
				}
			}
			if !slices.Equal(fields, tc.Problems) {
				t.Fatalf("problems with %q, want %q\nerror: %v", fields, tc.Problems, err)
			}
		})
	}
}

// TestCorpusJSONSchema runs the JSON Schema over the same corpus: it must accept and
// reject exactly what the Go validator accepts and rejects.
func TestCorpusJSONSchema(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range loadCorpus(t) {
		t.Run(tc.Name, func(t *testing.T) {
			err := schemaVerdict(s, tc.Envelope)
			if valid := len(tc.Problems) == 0; valid != (err == nil) {
				t.Fatalf("schema says valid=%v, corpus says valid=%v: %v", err == nil, valid, err)
			}
		})
	}
}

// schemaVerdict validates raw against the schema as the schema asks: parsed as an I-JSON
// message (RFC 7493: UTF-8, unique member names), which a JSON Schema cannot check on
// parsed data; nil when valid.
func schemaVerdict(s *jsonschema.Schema, raw []byte) error {
	if err := checkIJSON(raw); err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// checkIJSON reports input that is not UTF-8, not one JSON value, or has an object with
// a member name given twice.
func checkIJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	type scope struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a member name
	}
	var stack []*scope
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var top *scope
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &scope{object: d == '{', names: map[string]bool{}, key: d == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.object {
			if top.key {
				name := tok.(string)
				if top.names[name] {
					return fmt.Errorf("member %q given twice", name)
				}
				top.names[name] = true
			}
			top.key = !top.key
		}
	}
	return nil
}

// TestSeedExampleReasons pins the human-readable reasons for the seed's placeholder example.
func TestSeedExampleReasons(t *testing.T) {
	seed := loadCorpus(t)[0]
	_, err := event.Decode(seed.Envelope)
	if err == nil {
		t.Fatal("seed example accepted")
	}
	for _, want := range []string{
		`event_id: not a UUID: "uuid"`,
		`entity.id: not a UUID: "item-uuid"`,
		`entity.collection_id: not a UUID: "collection-uuid"`,
	} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
