package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
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
		if ac.Spec.Kafka.Topic != names.Topic {
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

	// Changing the group without the opt-in is refused; with it, accepted.
	regroup := audit.DeepCopy()
	regroup.Spec.Kafka.GroupID = "atlas-audit-2"
	err = env.Client.Update(ctx, regroup)
	if err == nil || !strings.Contains(err.Error(), "groupID cannot be changed") {
		t.Fatalf("group change: err = %v, want 'groupID cannot be changed'", err)
	}
	regroup.Spec.Kafka.AllowGroupIDChange = true
	if err := env.Client.Update(ctx, regroup); err != nil {
		t.Fatalf("group change with allowGroupIDChange: %v", err)
	}

	bad := []struct {
		name string
		edit func(*atlasv1alpha1.AtlasConsumer)
		want string
	}{
		{"unknown mode", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Mode = "archive" }, `Unsupported value: "archive"`},
		{"no brokers", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.BootstrapServers = nil }, "spec.kafka.bootstrapServers: Required value"},
		{"broker without port", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.BootstrapServers = []string{"kafka"} }, "spec.kafka.bootstrapServers[0]"},
		{"bad topic", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.Topic = "events/v1" }, "spec.kafka.topic"},
		{"bad start offset", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.StartOffset = "middle" }, `spec.kafka.startOffset: Unsupported value: "middle"`},
		{"negative replicas", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Replicas = ptr.To[int32](-1) }, "spec.replicas: Invalid value: -1"},
		{"indexer without elasticsearch", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Mode = atlasv1alpha1.AtlasConsumerModeIndexer }, "elasticsearch is required when mode is indexer"},
		{"audit with elasticsearch", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"http://es:9200"}}
		}, "elasticsearch is only for mode indexer"},
		{"elasticsearch address not a URL", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Mode = atlasv1alpha1.AtlasConsumerModeIndexer
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"es:9200"}}
		}, "spec.elasticsearch.addresses[0]"},
		{"replicas with autoscaling", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Replicas = ptr.To[int32](2)
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 4}
		}, "replicas and autoscaling are mutually exclusive"},
		{"min above max", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](5), MaxReplicas: 2}
		}, "minReplicas must not be greater than maxReplicas"},
		{"zero lag per replica", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, LagPerReplica: -5}
		}, "spec.autoscaling.lagPerReplica: Invalid value: -5"},
		{"lagPerReplica and targetDrainTime", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, LagPerReplica: 500, TargetDrainTime: &metav1.Duration{Duration: time.Minute}}
		}, "set lagPerReplica or targetDrainTime, not both"},
		{"targetDrainTime too short", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, TargetDrainTime: &metav1.Duration{Duration: 5 * time.Second},
				PollInterval: &metav1.Duration{Duration: 5 * time.Second}}
		}, "targetDrainTime must be between 10s and 24h"},
		{"targetDrainTime under two polls", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, TargetDrainTime: &metav1.Duration{Duration: 45 * time.Second}}
		}, "targetDrainTime must be at least twice pollInterval"},
		{"activationLag without scaling to zero", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, ActivationLag: ptr.To[int64](100)}
		}, "activationLag only applies to a consumer that scales to zero"},
		{"zero activationLag", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, MinReplicas: ptr.To[int32](0), ActivationLag: ptr.To[int64](0)}
		}, "spec.autoscaling.activationLag: Invalid value: 0"},
		{"poll interval too short", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, PollInterval: &metav1.Duration{Duration: time.Second}}
		}, "pollInterval must be between 5s and 1h"},
		{"negative stabilization", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 2, ScaleDownStabilization: &metav1.Duration{Duration: -time.Minute}}
		}, "scaleDownStabilization must be between 0s and 24h"},
		{"no DSN secret", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Postgres = atlasv1alpha1.PostgresSpec{} }, "dsnSecretRef needs the name of a Secret and a key in it"},
		{"client cert without key", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.TLS = &atlasv1alpha1.KafkaTLS{CertSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Key: "tls.crt"}}
		}, "certSecretRef and keySecretRef go together"},
		{"SCRAM without a password", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "SCRAM-SHA-512", UsernameSecretRef: secretSel("auth", "user")}
		}, "PLAIN and SCRAM need usernameSecretRef and passwordSecretRef"},
		{"OAUTHBEARER without oauthBearer", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER"}
		}, "oauthBearer is required with mechanism OAUTHBEARER, and only then"},
		{"OAUTHBEARER with a password", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", PasswordSecretRef: secretSel("auth", "password"),
				OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{TokenSecretRef: secretSel("jwt", "token")}}
		}, "usernameSecretRef and passwordSecretRef are for PLAIN and SCRAM only"},
		{"OAUTHBEARER token and grant", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{
				TokenSecretRef: secretSel("jwt", "token"), TokenURL: "https://idp/token",
				ClientIDSecretRef: secretSel("c", "id"), ClientSecretSecretRef: secretSel("c", "secret")}}
		}, "give either tokenSecretRef or tokenURL"},
		{"OAUTHBEARER grant without a secret", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{
				TokenURL: "https://idp/token", ClientIDSecretRef: secretSel("c", "id")}}
		}, "tokenURL needs clientIDSecretRef and clientSecretSecretRef"},
		{"AWS_MSK_IAM with oauthBearer", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "AWS_MSK_IAM", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{TokenSecretRef: secretSel("jwt", "token")}}
		}, "oauthBearer is required with mechanism OAUTHBEARER, and only then"},
		{"search CA twice", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}, TLS: &atlasv1alpha1.ElasticsearchTLS{
				CASecretRef: secretSel("es", "ca.crt"), CAConfigMapRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "b"}, Key: "ca.crt"}}}
		}, "caSecretRef and caConfigMapRef are alternatives"},
		{"search CA without verification", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}, TLS: &atlasv1alpha1.ElasticsearchTLS{
				CASecretRef: secretSel("es", "ca.crt"), InsecureSkipVerify: true}}
		}, "insecureSkipVerify turns verification off, so the CA would never be used"},
		{"search client cert without key", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}, TLS: &atlasv1alpha1.ElasticsearchTLS{
				CertSecretRef: secretSel("client", "tls.crt")}}
		}, "certSecretRef and keySecretRef go together"},
		{"unknown SASL mechanism", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "GSSAPI"}
		}, `spec.kafka.sasl.mechanism: Unsupported value: "GSSAPI"`},
		{"batch size zero", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Batch.Size = ptr.To[int32](0) }, "spec.batch.size: Invalid value: 0"},
		{"bad log level", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.LogLevel = "verbose" }, `spec.logLevel: Unsupported value: "verbose"`},
		{"extra egress port without a port", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.NetworkPolicy = &atlasv1alpha1.NetworkPolicySpec{ExtraEgressPorts: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP)}}}
		}, "each extraEgressPorts entry needs a port"},
	}
	for i, tc := range bad {
		ac := &atlasv1alpha1.AtlasConsumer{}
		ac.Namespace = "default"
		ac.Name = fmt.Sprintf("bad-%d", i)
		ac.Spec = atlasv1alpha1.AtlasConsumerSpec{
			Mode:  atlasv1alpha1.AtlasConsumerModeAudit,
			Kafka: atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"kafka:9092"}},
			Postgres: atlasv1alpha1.PostgresSpec{DSNSecretRef: corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "dsn"}},
		}
		tc.edit(ac)
		err := env.Client.Create(ctx, ac)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a rejection mentioning %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: rejected: %s", tc.name, err)
		}
	}

	good := []struct {
		name string
		edit func(*atlasv1alpha1.AtlasConsumer)
	}{
		{"OAUTHBEARER token", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{TokenSecretRef: secretSel("jwt", "token")}}
		}},
		{"OAUTHBEARER client credentials", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "OAUTHBEARER", OAuthBearer: &atlasv1alpha1.KafkaOAuthBearer{
				TokenURL: "https://idp.example/token", ClientIDSecretRef: secretSel("c", "id"), ClientSecretSecretRef: secretSel("c", "secret"), Scopes: []string{"kafka"}}}
		}},
		{"AWS_MSK_IAM", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Kafka.SASL = &atlasv1alpha1.KafkaSASL{Mechanism: "AWS_MSK_IAM"}
			a.Spec.Kafka.TLS = &atlasv1alpha1.KafkaTLS{}
		}},
		{"targetDrainTime, scaling to zero with an activation lag, partitions with lag", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 6, MinReplicas: ptr.To[int32](0), TargetDrainTime: &metav1.Duration{Duration: time.Minute},
				ActivationLag: ptr.To[int64](100), LimitToPartitionsWithLag: true}
		}},
		{"no policy named: lagPerReplica's default", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Autoscaling = &atlasv1alpha1.AutoscalingSpec{MaxReplicas: 6}
		}},
		{"search CA from a ConfigMap with a client certificate", func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Mode = atlasv1alpha1.AtlasConsumerModeIndexer
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}, TLS: &atlasv1alpha1.ElasticsearchTLS{
				CAConfigMapRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "bundle"}, Key: "ca.crt"},
				CertSecretRef:  secretSel("client", "tls.crt"), KeySecretRef: secretSel("client", "tls.key")}}
		}},
	}
	for i, tc := range good {
		ac := &atlasv1alpha1.AtlasConsumer{}
		ac.Namespace, ac.Name = "default", fmt.Sprintf("good-%d", i)
		ac.Spec = atlasv1alpha1.AtlasConsumerSpec{
			Mode:  atlasv1alpha1.AtlasConsumerModeAudit,
			Kafka: atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"kafka:9092"}},
			Postgres: atlasv1alpha1.PostgresSpec{DSNSecretRef: corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "dsn"}},
		}
		tc.edit(ac)
		if err := env.Client.Create(ctx, ac); err != nil {
			t.Errorf("%s: rejected: %v", tc.name, err)
		}
	}
}

func secretSel(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}
