package indexer

import (
	"strings"
	"testing"
	"time"
)

func TestWriteIndex(t *testing.T) {
	for _, c := range []struct {
		name, body, want, wantErr string
	}{
		{"an alias on one index", `{"items-v1":{"aliases":{"items":{"is_write_index":true}}}}`, "items-v1", ""},
		{"an alias on one index, no write flag", `{"items-v1":{"aliases":{"items":{}}}}`, "items-v1", ""},
		{"a concrete index given as the name", `{"items-v1":{"aliases":{}}}`, "items-v1", ""},
		{"an alias on two indexes with a write index", `{"items-v1":{"aliases":{"items":{"is_write_index":false}}},"items-v2":{"aliases":{"items":{"is_write_index":true}}}}`, "items-v2", ""},
		{"an alias on two indexes without one", `{"items-v1":{"aliases":{"items":{}}},"items-v2":{"aliases":{"items":{}}}}`, "", "points at 2 indexes (items-v1, items-v2) and none is its write index"},
		{"not JSON", `<html>`, "", "resolve index alias items"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := writeIndex([]byte(c.body), "items")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("writeIndex = %q, %v; want an error containing %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("writeIndex = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestIndexIdentity(t *testing.T) {
	for _, c := range []struct {
		name, body, wantUUID string
		wantGC               time.Duration
		wantErr              string
	}{
		{"gc_deletes by default", `{"i":{"settings":{"index.uuid":"u1"},"defaults":{"index.gc_deletes":"60s"}}}`, "u1", time.Minute, ""},
		{"gc_deletes set on the index", `{"i":{"settings":{"index.uuid":"u2","index.gc_deletes":"2m"},"defaults":{}}}`, "u2", 2 * time.Minute, ""},
		{"gc_deletes unknown", `{"i":{"settings":{"index.uuid":"u3"}}}`, "u3", 0, ""},
		{"no uuid", `{"i":{"settings":{}}}`, "", 0, "no index.uuid"},
		{"another index", `{"j":{"settings":{"index.uuid":"u"}}}`, "", 0, "does not name it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			uuid, gc, err := indexIdentity([]byte(c.body), "i")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("indexIdentity = %q %v %v; want an error containing %q", uuid, gc, err, c.wantErr)
				}
				return
			}
			if err != nil || uuid != c.wantUUID || gc != c.wantGC {
				t.Fatalf("indexIdentity = %q %v %v; want %q %v", uuid, gc, err, c.wantUUID, c.wantGC)
			}
		})
	}
}

func TestParseTimeValue(t *testing.T) {
	for in, want := range map[string]time.Duration{"60s": time.Minute, "500ms": 500 * time.Millisecond, "1h": time.Hour, "2d": 48 * time.Hour, "": 0, "5nanos": 0, "xd": 0} {
		if got := parseTimeValue(in); got != want {
			t.Errorf("parseTimeValue(%q) = %v, want %v", in, got, want)
		}
	}
}
