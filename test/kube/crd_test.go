package kube_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// TestCRDSchema: the samples under config/samples are accepted (with the topic
// defaulted), and the API server rejects invalid AtlasConsumers with readable messages.
func TestCRDSchema(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := kube.Start(t)

	samples, err := filepath.Glob(filepath.Join(infra.RepoRoot(t), "config", "samples", "events_v1alpha1_*.yaml"))
	if err != nil || len(samples) < 2 {
		t.Fatalf("samples: %v %v", samples, err)
	}
	for _, path := range samples {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ac atlasv1alpha1.AtlasConsumer
		if err := yaml.UnmarshalStrict(raw, &ac); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ac.Namespace = "default"
		if err := env.Client.Create(ctx, &ac); err != nil {
			t.Fatalf("sample %s rejected: %v", filepath.Base(path), err)
		}
		if ac.Spec.Kafka.Topic != atlasv1alpha1.DefaultTopic {
			t.Errorf("%s: topic %q after defaulting", ac.Name, ac.Spec.Kafka.Topic)
		}
	}

	var audit atlasv1alpha1.AtlasConsumer
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "audit"}, &audit); err != nil {
		t.Fatal(err)
	}
	changed := audit.DeepCopy()
	changed.Spec.Mode = atlasv1alpha1.AtlasConsumerModeIndexer
	err = env.Client.Update(ctx, changed)
	if err == nil || !strings.Contains(err.Error(), "mode is immutable") {
		t.Fatalf("mode change: err = %v, want 'mode is immutable'", err)
	}

	bad := []struct {
		name string
		edit func(*atlasv1alpha1.AtlasConsumer)
		want string
	}{
		{"unknown mode", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Mode = "archive" }, `Unsupported value: "archive"`},
		{"no brokers", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.BootstrapServers = nil }, "bootstrapServers"},
		{"bad topic", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.Topic = "events/v1" }, "spec.kafka.topic"},
		{"negative replicas", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Replicas = ptr.To[int32](-1) }, "spec.replicas"},
	}
	for i, tc := range bad {
		ac := &atlasv1alpha1.AtlasConsumer{}
		ac.Namespace = "default"
		ac.Name = "bad-" + string(rune('a'+i))
		ac.Spec = atlasv1alpha1.AtlasConsumerSpec{
			Mode:  atlasv1alpha1.AtlasConsumerModeAudit,
			Kafka: atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"kafka:9092"}},
		}
		tc.edit(ac)
		err := env.Client.Create(ctx, ac)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a rejection mentioning %q", tc.name, err, tc.want)
		}
	}
}
