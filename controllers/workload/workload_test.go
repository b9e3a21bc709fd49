package workload

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
)

func consumer(edit func(*atlasv1alpha1.AtlasConsumer)) *atlasv1alpha1.AtlasConsumer {
	ac := &atlasv1alpha1.AtlasConsumer{}
	ac.Namespace, ac.Name = "prod", "audit"
	ac.Spec = atlasv1alpha1.AtlasConsumerSpec{
		Mode:     atlasv1alpha1.AtlasConsumerModeAudit,
		Kafka:    atlasv1alpha1.KafkaSpec{BootstrapServers: []string{"k:9092"}},
		Postgres: atlasv1alpha1.PostgresSpec{DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "dsn"}},
	}
	if edit != nil {
		edit(ac)
	}
	return ac
}

func TestReplicasFromSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*atlasv1alpha1.AtlasConsumer)
		want int32
	}{
		{"unset runs one", nil, 1},
		{"explicit", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Replicas = ptr.To[int32](4) }, 4},
		{"zero", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Replicas = ptr.To[int32](0) }, 0},
		{"suspend wins", func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Replicas = ptr.To[int32](4); a.Spec.Suspend = true }, 0},
	} {
		if got := ReplicasFromSpec(consumer(tc.edit)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestGroupAndTopicDefaults(t *testing.T) {
	ac := consumer(nil)
	if GroupID(ac) != "atlas.prod.audit" || Topic(ac) != names.Topic || !StartEarliest(ac) {
		t.Fatalf("defaults: group %q topic %q earliest %t", GroupID(ac), Topic(ac), StartEarliest(ac))
	}
	ac = consumer(func(a *atlasv1alpha1.AtlasConsumer) {
		a.Spec.Kafka.GroupID, a.Spec.Kafka.Topic, a.Spec.Kafka.StartOffset = "g", "t", atlasv1alpha1.StartOffsetLatest
	})
	if GroupID(ac) != "g" || Topic(ac) != "t" || StartEarliest(ac) {
		t.Fatalf("explicit: group %q topic %q earliest %t", GroupID(ac), Topic(ac), StartEarliest(ac))
	}
}

// TestMutualTLS: a client certificate becomes a projected volume of three Secret keys
// and the flags pointing at its files; no key value reaches the pod spec.
func TestMutualTLS(t *testing.T) {
	ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) {
		sel := func(name, key string) *corev1.SecretKeySelector {
			return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
		}
		a.Spec.Kafka.TLS = &atlasv1alpha1.KafkaTLS{CASecretRef: sel("ca", "ca.pem"), CertSecretRef: sel("client", "tls.crt"), KeySecretRef: sel("client", "tls.key")}
	})
	dep := Deployment(ac, Config{Image: "img", Replicas: 1})
	var projected *corev1.ProjectedVolumeSource
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == kafkaTLSVolume {
			projected = v.Projected
		}
	}
	if projected == nil || len(projected.Sources) != 3 {
		t.Fatalf("projected volume = %+v, want three Secret sources", projected)
	}
	if got := projected.Sources[0].Secret; got.Name != "ca" || got.Items[0].Key != "ca.pem" || got.Items[0].Path != "ca.crt" {
		t.Errorf("CA source = %+v", got)
	}
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for name, want := range map[string]string{
		"ATLAS_KAFKA_TLS": "true", "ATLAS_KAFKA_TLS_CA_FILE": "/etc/atlas/kafka-tls/ca.crt",
		"ATLAS_KAFKA_TLS_CERT_FILE": "/etc/atlas/kafka-tls/tls.crt", "ATLAS_KAFKA_TLS_KEY_FILE": "/etc/atlas/kafka-tls/tls.key",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	want := []SecretKeyRef{{"pg", "dsn", false, false}, {"ca", "ca.pem", false, false}, {"client", "tls.crt", false, false}, {"client", "tls.key", false, false}}
	if got := SecretRefs(ac); !slices.Equal(got, want) {
		t.Errorf("SecretRefs = %v, want %v", got, want)
	}
	if got := SecretNames(ac); !slices.Equal(got, []string{"pg", "ca", "client"}) {
		t.Errorf("SecretNames = %v", got)
	}
}

// TestOperatorLabelsWin: user pod labels are kept, but cannot take over the selector.
func TestOperatorLabelsWin(t *testing.T) {
	ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) {
		a.Spec.Pod.Labels = map[string]string{"team": "audit", LabelInstance: "hijack"}
	})
	l := Deployment(ac, Config{Replicas: 1}).Spec.Template.Labels
	if l["team"] != "audit" || l[LabelInstance] != "audit" {
		t.Fatalf("pod labels = %v", l)
	}
}

func TestMigrationsInitContainer(t *testing.T) {
	on := Deployment(consumer(nil), Config{Image: "img"})
	off := Deployment(consumer(func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Postgres.RunMigrations = ptr.To(false) }), Config{Image: "img"})
	if len(on.Spec.Template.Spec.InitContainers) != 1 || len(off.Spec.Template.Spec.InitContainers) != 0 {
		t.Fatalf("init containers: default %d, runMigrations=false %d", len(on.Spec.Template.Spec.InitContainers), len(off.Spec.Template.Spec.InitContainers))
	}
}

func TestPodDisruptionBudgetOnlyAboveOneReplica(t *testing.T) {
	for replicas, want := range map[int32]bool{0: false, 1: false, 2: true, 10: true} {
		if got := WantsPodDisruptionBudget(replicas); got != want {
			t.Errorf("%d replicas: %t, want %t", replicas, got, want)
		}
	}
}

// Consumer pods carry no ServiceAccount token, whichever ServiceAccount they run as: they
// never call the Kubernetes API.
func TestNoServiceAccountToken(t *testing.T) {
	for _, edit := range []func(*atlasv1alpha1.AtlasConsumer){nil, func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Pod.ServiceAccountName = "workload-identity" }} {
		spec := Deployment(consumer(edit), Config{Image: "img"}).Spec.Template.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("serviceAccountName %q: automountServiceAccountToken %v, want false", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
		}
	}
}
