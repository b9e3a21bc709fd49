package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

func runAtlas(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func consumeAll(t *testing.T, topic string, want int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := infra.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for len(recs) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records", len(recs), want)
		}
		recs = append(recs, f.Records()...)
	}
	// Nothing more arrives.
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if extra := cl.PollFetches(short).Records(); len(extra) > 0 {
		t.Fatalf("%d records more than the %d expected", len(extra), want)
	}
	return recs
}

// TestProduceLines: valid lines are published, a bad line is reported with its number
// and nothing is sent for it, and the command exits with status 2.
func TestProduceLines(t *testing.T) {
	t.Parallel()
	topic := infra.NewTopic(t, 2)
	col := uuid.New()
	var lines []string
	var ids []string
	for i := range 3 {
		env, err := event.New(event.ItemCreated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &col},
			map[string]any{"title": i})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(env)
		lines = append(lines, string(raw))
		ids = append(ids, env.EventID.String())
	}
	input := lines[0] + "\n" + `{"event_id":"uuid","event_type":"ItemCreated"}` + "\n\n" + lines[1] + "\nnot json\n" + lines[2] + "\n"
	out, err := runAtlas(t, input, "produce", "--kafka-brokers", strings.Join(infra.KafkaBrokers(t), ","), "--topic", topic)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 2 {
		t.Fatalf("err = %v, want exit status 2\n%s", err, out)
	}
	for _, want := range []string{`line 2: invalid event envelope: event_id: not a UUID: "uuid"`, "line 5: invalid event envelope: not JSON",
		"published 3 events", "rejected 2 lines"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	recs := consumeAll(t, topic, 3)
	got := map[string]bool{}
	for _, r := range recs {
		env, err := event.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[env.EventID.String()] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("event %s not published", id)
		}
	}
}

// TestProduceGenerate: --generate N publishes exactly N valid events.
func TestProduceGenerate(t *testing.T) {
	t.Parallel()
	topic := infra.NewTopic(t, 3)
	out, err := runAtlas(t, "", "produce", "--kafka-brokers", strings.Join(infra.KafkaBrokers(t), ","),
		"--topic", topic, "--generate", "1000", "--seed", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	recs := consumeAll(t, topic, 1000)
	for _, r := range recs {
		if _, err := event.Decode(r.Value); err != nil {
			t.Fatalf("generated record does not decode: %v", err)
		}
	}
	if !strings.Contains(out, "published 1000 events") {
		t.Fatalf("output: %s", out)
	}
}

// TestCommandsExplainMissingConfiguration: commands say what they lack.
func TestCommandsExplainMissingConfiguration(t *testing.T) {
	// The operator says what it lacks before it tries to reach a cluster.
	for args, want := range map[string]string{
		"manager": "--consumer-image is empty",
		"manager --consumer-image atlas:1 --kubeconfig /nonexistent/kubeconfig": "kubeconfig /nonexistent/kubeconfig",
		"manager --consumer-image atlas:1 --max-concurrent-reconciles 0":        "--max-concurrent-reconciles 0: want at least 1",
	} {
		if _, err := runAtlas(t, "", strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("atlas %s: err = %v, want %q", args, err, want)
		}
	}
	// Commands that need a database say where it comes from when it is missing.
	t.Setenv("ATLAS_POSTGRES_DSN", "")
	for _, args := range [][]string{{"consume", "audit"}, {"consume", "indexer"}, {"migrate", "up"}, {"migrate", "status"}} {
		if _, err := runAtlas(t, "", args...); err == nil || !strings.Contains(err.Error(), "ATLAS_POSTGRES_DSN is not set") {
			t.Errorf("atlas %v without a database: err = %v", args, err)
		}
	}
	out, err := runAtlas(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "atlas ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

// TestProduceApplyItems: with --apply-items the generator plays the Atlas API: every item
// ends up in the items table in the state its last published event announces.
func TestProduceApplyItems(t *testing.T) {
	topic := infra.NewTopic(t, 3)
	dsn := infra.NewDatabase(t)
	t.Setenv("ATLAS_POSTGRES_DSN", dsn)
	if out, err := runAtlas(t, "", "migrate", "up"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := runAtlas(t, "", "produce", "--kafka-brokers", strings.Join(infra.KafkaBrokers(t), ","),
		"--topic", topic, "--generate", "3000", "--seed", "5", "--apply-items", "--progress", "never")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	last := map[uuid.UUID]*event.Envelope{}
	for _, r := range consumeAll(t, topic, 3000) {
		env, err := event.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if env.Entity.Type == event.EntityItem {
			last[env.Entity.ID] = env // one partition per item: its events arrive in order
		}
	}
	if len(last) < 100 {
		t.Fatalf("only %d items in 3000 generated events", len(last))
	}
	pool := infra.NewPoolFor(t, dsn)
	hard, soft := 0, 0
	for id, env := range last {
		var version int64
		var deleted bool
		err := pool.QueryRow(context.Background(), `SELECT version, deleted_at IS NOT NULL FROM items WHERE id = $1`, id).Scan(&version, &deleted)
		var d struct {
			Version int64 `json:"version"`
		}
		if jerr := json.Unmarshal(env.Data, &d); jerr != nil {
			t.Fatal(jerr)
		}
		switch {
		case env.EventType == event.ItemDeleted && errors.Is(err, pgx.ErrNoRows):
			hard++
		case err != nil:
			t.Fatalf("item %s (last event %s): %v", id, env.EventType, err)
		case version != d.Version || deleted != (env.EventType == event.ItemDeleted):
			t.Fatalf("item %s: version %d deleted %t, last event %s version %d", id, version, deleted, env.EventType, d.Version)
		case deleted:
			soft++
		}
	}
	t.Logf("%d items: %d hard-deleted, %d soft-deleted, the rest live at their last version", len(last), hard, soft)
}
