package consumer_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// The consumer refuses to start on an out-of-date schema, saying what to do; `atlas
// migrate up` brings the schema up to date and `atlas migrate status` agrees.
func TestAuditRefusesOutOfDateSchema(t *testing.T) {
	t.Parallel()
	dsn := infra.NewDatabase(t)
	env := append(os.Environ(), names.EnvPostgresDSN+"="+dsn)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(atlasBinary(t), args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("consume", "audit", "--kafka-brokers", strings.Join(infra.KafkaBrokers(t), ","),
		"--topic", "unused", "--health-addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "database schema is out of date") || !strings.Contains(out, "atlas migrate up") {
		t.Fatalf("consume on an empty database: exit %d, output:\n%s", code, out)
	}
	if strings.Contains(out, dsn) {
		t.Fatalf("the output shows the DSN:\n%s", out)
	}
	if out, code := run("migrate", "status"); code == 0 {
		t.Fatalf("migrate status on an empty database exited 0:\n%s", out)
	}
	if out, code := run("migrate", "up"); code != 0 || !strings.Contains(out, "the schema is at version") {
		t.Fatalf("migrate up: exit %d:\n%s", code, out)
	}
	if out, code := run("migrate", "status"); code != 0 {
		t.Fatalf("migrate status after up: exit %d:\n%s", code, out)
	}
}
