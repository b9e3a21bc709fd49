package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The peer users would deploy instead of the audit consumer: Kafka Connect with the Debezium
// JDBC sink connector, a real standalone worker (hack/kafka-connect.sh) writing the same events
// into a table identical to audit_events.

// connectBatchSize is the connector's batch.size and its consumer's max.poll.records: larger
// batches than the default 500, as Debezium's documentation advises for throughput, and the
// audit consumer's own batch size in this benchmark.
const connectBatchSize = 4000

// run is one measured run of a consumer: its time, CPU and peak memory.
type run struct {
	name     string
	events   int
	duration time.Duration
	cpu      float64 // seconds, user + system
	rss      int64   // peak resident set size, bytes
}

func (r run) rate() float64 { return float64(r.events) / r.duration.Seconds() }

func (r run) String() string {
	return fmt.Sprintf("%-46s %8.0f events/s  %6.1f CPU s/M events  peak RSS %5.0f MiB  (%s)", r.name, r.rate(),
		r.cpu/float64(r.events)*1e6, float64(r.rss)/(1<<20), r.duration.Round(time.Millisecond))
}

// connectTopic copies the records of s.topic to a new topic in the form the connector needs:
// JSON with schemas (JsonConverter, schemas.enable=true), one flat struct per event whose
// fields are audit_events' columns, typed with Debezium's semantic names (io.debezium.data.Uuid,
// io.debezium.time.ZonedTimestamp, io.debezium.data.Json) so that the connector writes uuid,
// timestamptz and jsonb columns, and the received envelope as bytes. The Kafka columns come from
// the connector's InsertField transform.
func connectTopic(b testing.TB, s *setup, total int) string {
	b.Helper()
	topic := infra.NewTopic(b, 6)
	in := infra.KafkaClient(b, kgo.ConsumeTopics(s.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	out := infra.KafkaClient(b, kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	ctx := context.Background()
	var failed error
	for n := 0; n < total; {
		fetches := in.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			b.Fatal(err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			env, err := event.Decode(r.Value)
			if err != nil {
				b.Fatal(err)
			}
			value, err := json.Marshal(connectRecord(env))
			if err != nil {
				b.Fatal(err)
			}
			// same key, so the same partition and order as the audit consumer sees
			out.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed = err
				}
			})
		})
	}
	if err := out.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if failed != nil {
		b.Fatal(failed)
	}
	return topic
}

var connectSchema = map[string]any{
	"type": "struct", "name": "atlas.AuditEvent", "optional": false,
	"fields": []map[string]any{
		{"field": "event_id", "type": "string", "name": "io.debezium.data.Uuid", "optional": false},
		{"field": "event_type", "type": "string", "optional": false},
		{"field": "version", "type": "int32", "optional": false},
		{"field": "occurred_at", "type": "string", "name": "io.debezium.time.ZonedTimestamp", "optional": false},
		{"field": "actor_user_id", "type": "string", "name": "io.debezium.data.Uuid", "optional": true},
		{"field": "trace_id", "type": "string", "optional": true},
		{"field": "entity_type", "type": "string", "optional": false},
		{"field": "entity_id", "type": "string", "name": "io.debezium.data.Uuid", "optional": false},
		{"field": "collection_id", "type": "string", "name": "io.debezium.data.Uuid", "optional": true},
		{"field": "data", "type": "string", "name": "io.debezium.data.Json", "optional": false},
		{"field": "envelope", "type": "bytes", "optional": false},
	},
}

func connectRecord(e *event.Envelope) map[string]any {
	str := func(u fmt.Stringer) any {
		if u == nil {
			return nil
		}
		return u.String()
	}
	payload := map[string]any{
		"event_id": e.EventID.String(), "event_type": string(e.EventType), "version": e.Version,
		"occurred_at": e.OccurredAt.Format(time.RFC3339Nano), "actor_user_id": nil, "trace_id": e.TraceID,
		"entity_type": string(e.Entity.Type), "entity_id": e.Entity.ID.String(), "collection_id": nil,
		"data": string(e.Data), "envelope": e.Raw, // []byte: base64 in JSON, as JsonConverter reads bytes
	}
	if e.ActorUserID != nil {
		payload["actor_user_id"] = str(e.ActorUserID)
	}
	if e.Entity.CollectionID != nil {
		payload["collection_id"] = str(e.Entity.CollectionID)
	}
	return map[string]any{"schema": connectSchema, "payload": payload}
}

// primaryKey returns audit_events' primary key columns, comma-separated, as the connector's
// primary.key.fields takes them: event_id on a single table, event_id,occurred_at on one
// partitioned by day.
func primaryKey(b testing.TB, conn interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) string {
	b.Helper()
	var cols []string
	err := conn.QueryRow(context.Background(), `SELECT array_agg(a.attname::text ORDER BY k.i) FROM pg_constraint c
		CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
		WHERE c.conrelid = 'audit_events'::regclass AND c.contype = 'p'`).Scan(&cols)
	if err != nil || len(cols) == 0 {
		b.Fatalf("read audit_events' primary key: %v", err)
	}
	return strings.Join(cols, ",")
}

// kafkaConnect runs a standalone Kafka Connect worker with the Debezium JDBC sink connector
// (tasks.max = tasks) from topic into table (created like audit_events), and times it from the
// moment all its tasks run until the table holds total rows.
func kafkaConnect(b testing.TB, s *setup, topic, table string, tasks, total int) run {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range auditEventsLike(b, conn, table) {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	dir := b.TempDir()
	plugins, err := exec.Command("bash", filepath.Join(infra.RepoRoot(b), "hack", "kafka-connect.sh"), "plugins").Output()
	if err != nil {
		b.Fatalf("hack/kafka-connect.sh plugins: %v", err)
	}
	u, err := url.Parse(s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	password, _ := u.User.Password()
	name := "atlas-audit-" + table
	worker := map[string]string{
		"bootstrap.servers":              strings.Join(s.brokers, ","),
		"key.converter":                  "org.apache.kafka.connect.storage.StringConverter",
		"value.converter":                "org.apache.kafka.connect.json.JsonConverter",
		"value.converter.schemas.enable": "true",
		"offset.storage.file.filename":   filepath.Join(dir, "connect.offsets"),
		"offset.flush.interval.ms":       "10000",
		"plugin.path":                    strings.TrimSpace(string(plugins)),
		"listeners":                      "http://" + freeAddr(b),
		"consumer.max.poll.records":      strconv.Itoa(connectBatchSize),
	}
	connector := map[string]string{
		"name":                connectorName(name),
		"connector.class":     "io.debezium.connector.jdbc.JdbcSinkConnector",
		"tasks.max":           strconv.Itoa(tasks),
		"topics":              topic,
		"connection.url":      fmt.Sprintf("jdbc:postgresql://%s%s", u.Host, u.Path),
		"connection.username": u.User.Username(),
		"connection.password": password,
		// insert, or update when the key exists: the connector's way of taking a redelivery once
		"insert.mode":                         "upsert",
		"primary.key.mode":                    "record_value",
		"primary.key.fields":                  primaryKey(b, conn),
		"schema.evolution":                    "none",
		"collection.name.format":              table,
		"batch.size":                          strconv.Itoa(connectBatchSize),
		"use.reduction.buffer":                "false",
		"transforms":                          "kafka",
		"transforms.kafka.type":               "org.apache.kafka.connect.transforms.InsertField$Value",
		"transforms.kafka.topic.field":        "kafka_topic",
		"transforms.kafka.partition.field":    "kafka_partition",
		"transforms.kafka.offset.field":       "kafka_offset",
		"errors.tolerance":                    "none",
		"consumer.override.max.poll.records":  strconv.Itoa(connectBatchSize),
		"consumer.override.auto.offset.reset": "earliest",
	}
	b.Logf("Kafka Connect worker: %s", props(worker, "bootstrap.servers", "plugin.path", "offset.storage.file.filename"))
	b.Logf("Debezium JDBC sink: %s", props(connector, "connection.password"))
	write := func(name string, m map[string]string) string {
		var lines []string
		for k, v := range m {
			lines = append(lines, k+"="+v)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		return path
	}
	script := filepath.Join(infra.RepoRoot(b), "hack", "kafka-connect.sh")
	var start time.Time
	cmd := exec.Command("bash", script, "start", dir, write("worker.properties", worker), write("connector.properties", connector))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("hack/kafka-connect.sh start: %v\n%s", err, out)
	}
	stop := func() { _ = exec.Command("bash", script, "stop", dir).Run() }
	defer stop()
	raw, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	status := worker["listeners"] + "/connectors/" + connector["name"] + "/status"
	// The clock starts once every task runs: the JVM's start and the plugin scan (some ten
	// seconds, and as many CPU seconds) are not what is compared.
	for deadline := time.Now().Add(2 * time.Minute); runningTasks(status) < tasks; time.Sleep(100 * time.Millisecond) {
		if failed := failedTasks(status); failed != "" {
			b.Fatalf("the connector failed: %s", failed)
		}
		if time.Now().After(deadline) || !alive(pid) {
			log, _ := os.ReadFile(filepath.Join(dir, "connect.log"))
			b.Fatalf("the connector's %d tasks were not running after 2 minutes (worker alive: %t)\n%s", tasks, alive(pid), tail(log))
		}
	}
	start = time.Now()
	cpu0 := infra.ProcessCPU(b, pid)
	deadline := time.Now().Add(30 * time.Minute)
	// Progress from the statistics' insert counters of the table and its partitions (a
	// count(*) every poll would scan the table and slow the peer down). It can trail the commits by seconds, so the end of the run is
	// the last row's received_at (the start of the transaction that wrote it) and the rows are
	// then counted once.
	for rows := 0; rows < total; time.Sleep(250 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT sum(pg_stat_get_tuples_inserted(r))::bigint FROM
			(SELECT $1::regclass AS r UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass) t`, table).Scan(&rows); err != nil {
			b.Fatal(err)
		}
		if failed := failedTasks(status); failed != "" {
			b.Fatalf("the connector failed: %s", failed)
		}
		if time.Now().After(deadline) || !alive(pid) {
			log, _ := os.ReadFile(filepath.Join(dir, "connect.log"))
			out, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			b.Fatalf("the connector wrote %d of %d rows (worker alive: %t)\n%s\n%s", rows, total, alive(pid), tail(log), tail(out))
		}
	}
	var rows int
	var end time.Time
	if err := conn.QueryRow(ctx, "SELECT count(*), max(received_at) FROM "+table).Scan(&rows, &end); err != nil || rows != total {
		b.Fatalf("%s holds %d rows (%v), want %d", table, rows, err, total)
	}
	r := run{name: fmt.Sprintf("Kafka Connect + Debezium JDBC sink, tasks.max=%d", tasks), events: total,
		duration: end.Sub(start), cpu: infra.ProcessCPU(b, pid) - cpu0, rss: peak(b, pid)}
	return r
}

// connectorName keeps the connector's name (and so its group, connect-<name>) short and valid.
func connectorName(s string) string { return strings.ReplaceAll(s, "_", "-") }

func props(m map[string]string, hide ...string) string {
	var out []string
	for k, v := range m {
		for _, h := range hide {
			if k == h {
				v = "…"
			}
		}
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// sameRows counts the rows of each table that the other does not hold, over the event's
// columns (the Kafka columns differ: the connector read another topic).
func sameRows(b testing.TB, s *setup, a, c string) (onlyA, onlyC int) {
	b.Helper()
	const cols = "event_id, event_type, version, occurred_at, actor_user_id, trace_id, entity_type, entity_id, collection_id, data, envelope"
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	q := func(x, y string) int {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM (SELECT "+cols+" FROM "+x+" EXCEPT SELECT "+cols+" FROM "+y+") d").Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	return q(a, c), q(c, a)
}

func peak(b testing.TB, pid int) int64 {
	b.Helper()
	_, p := infra.ProcessMemory(b, pid)
	return p
}

// runningTasks counts the connector's running tasks, from the worker's REST API.
func runningTasks(statusURL string) int {
	n := 0
	for _, t := range connectorTasks(statusURL) {
		if t.State == "RUNNING" {
			n++
		}
	}
	return n
}

type connectTask struct {
	ID    int    `json:"id"`
	State string `json:"state"`
	Trace string `json:"trace"`
}

// connectorTasks returns the connector's tasks (none while the API does not answer yet).
func connectorTasks(statusURL string) []connectTask {
	resp, err := http.Get(statusURL)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Tasks []connectTask `json:"tasks"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return st.Tasks
}

// failedTasks returns the trace of the connector's failed tasks, from the worker's REST API
// ("" while none failed or the API does not answer yet).
func failedTasks(statusURL string) string {
	for _, t := range connectorTasks(statusURL) {
		if t.State == "FAILED" {
			return fmt.Sprintf("task %d: %s", t.ID, tail([]byte(t.Trace)))
		}
	}
	return ""
}
