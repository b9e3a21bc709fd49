package consumer_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Issue test 8: events published by an independent client (kcat, i.e. librdkafka) with
// each compression codec are audited.
func TestAuditEventsFromKcatWithEveryCodec(t *testing.T) {
	t.Parallel()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run hack/install-deps.sh (apt-get install -y kcat); `make test` does it")
	}
	s := newSetup(t, 3)
	envs := generate(t, 8, 1_000)
	codecs := []string{"gzip", "snappy", "lz4", "zstd"}
	per := len(envs) / len(codecs)
	for i, codec := range codecs {
		var lines strings.Builder
		for _, env := range envs[i*per : (i+1)*per] {
			raw, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			lines.Write(raw)
			lines.WriteByte('\n')
		}
		file := filepath.Join(t.TempDir(), codec+".jsonl")
		if err := os.WriteFile(file, []byte(lines.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(kcat, "-P", "-b", strings.Join(s.brokers, ","), "-t", s.topic, "-z", codec,
			"-X", "linger.ms=50", "-l", file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat -z %s: %v\n%s", codec, err, out)
		}
	}
	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, len(envs), time.Minute, c)
	s.assertExactly(t, envs)
	if n, _ := c.metric("atlas_consumer_dead_lettered_total"); n != 0 {
		t.Fatalf("%v records were dead-lettered", n)
	}
	c.stop()
}
