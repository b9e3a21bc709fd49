package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

const (
	dsnValue      = "postgres://atlas:s3cr3t-dsn@pg.db:5432/atlas"
	saslPassword  = "s3cr3t-sasl-password"
	saslUser      = "atlas-indexer"
	esPassword    = "s3cr3t-es-password"
	timeoutCreate = 20 * time.Second
)

// TestReconcileBuildsDeploymentServiceAndBudget: an indexer AtlasConsumer with every
// kind of reference becomes a Deployment with the exact args, environment and Secret
// references (no Secret value anywhere in it), a metrics Service and a
// PodDisruptionBudget, all controlled by the AtlasConsumer.
func TestReconcileBuildsDeploymentServiceAndBudget(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	mustCreate(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-auth"},
		Data: map[string][]byte{"user": []byte(saslUser), "password": []byte(saslPassword), "ca.crt": []byte("-----BEGIN CERTIFICATE-----\n")}})
	mustCreate(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "es"},
		Data: map[string][]byte{"username": []byte("elastic"), "password": []byte(esPassword)}})

	ac := &atlasv1alpha1.AtlasConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "search"},
		Spec: atlasv1alpha1.AtlasConsumerSpec{
			Mode: atlasv1alpha1.AtlasConsumerModeIndexer,
			Kafka: atlasv1alpha1.KafkaSpec{
				BootstrapServers: []string{"kafka-0.kafka:9093", "kafka-1.kafka:9093"},
				DeadLetterTopic:  "atlas.domain-events.v1.dlq",
				TLS:              &atlasv1alpha1.KafkaTLS{CASecretRef: secretKey("kafka-auth", "ca.crt")},
				SASL: &atlasv1alpha1.KafkaSASL{Mechanism: "SCRAM-SHA-512",
					UsernameSecretRef: secretKey("kafka-auth", "user"), PasswordSecretRef: secretKey("kafka-auth", "password")},
			},
			Postgres:      atlasv1alpha1.PostgresSpec{DSNSecretRef: *secretKey("pg", "dsn")},
			Elasticsearch: &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es.search:9200"}, CredentialsSecretRef: &corev1.LocalObjectReference{Name: "es"}},
			Replicas:      ptr.To[int32](3),
			Batch:         atlasv1alpha1.BatchSpec{Size: ptr.To[int32](500), MaxWait: &metav1.Duration{Duration: 250 * time.Millisecond}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}},
			Pod: atlasv1alpha1.PodOverrides{
				Labels:             map[string]string{"team": "search"},
				NodeSelector:       map[string]string{"pool": "consumers"},
				Tolerations:        []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "consumers", Effect: corev1.TaintEffectNoSchedule}},
				ServiceAccountName: "indexer",
				PriorityClassName:  "atlas-high",
			},
		},
	}
	mustCreate(t, env, ac)

	dep := waitDeployment(t, env, ns, "search")
	assertControlledBy(t, dep, ac)
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", *dep.Spec.Replicas)
	}
	wantSelector := map[string]string{workload.LabelName: workload.AppName, workload.LabelInstance: "search"}
	if !mapsEqual(dep.Spec.Selector.MatchLabels, wantSelector) {
		t.Errorf("selector = %v, want %v", dep.Spec.Selector.MatchLabels, wantSelector)
	}
	pod := dep.Spec.Template.Spec
	if dep.Spec.Template.Labels["team"] != "search" || dep.Spec.Template.Labels[workload.LabelInstance] != "search" {
		t.Errorf("pod labels = %v", dep.Spec.Template.Labels)
	}
	if pod.ServiceAccountName != "indexer" || pod.PriorityClassName != "atlas-high" || pod.NodeSelector["pool"] != "consumers" || len(pod.Tolerations) != 1 {
		t.Errorf("pod overrides not applied: sa=%q priority=%q nodeSelector=%v tolerations=%v", pod.ServiceAccountName, pod.PriorityClassName, pod.NodeSelector, pod.Tolerations)
	}
	if pod.SecurityContext == nil || !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) || pod.SecurityContext.SeccompProfile == nil ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context = %+v, want non-root with the RuntimeDefault seccomp profile", pod.SecurityContext)
	}

	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		t.Fatalf("containers = %d, init containers = %d; want 1 and 1 (migrations)", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if c.Image != testImage || !slices.Equal(c.Args, []string{"consume", "indexer"}) {
		t.Errorf("consumer container: image %q args %q", c.Image, c.Args)
	}
	assertRestricted(t, c)
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name != "http-metrics" {
		t.Errorf("ports = %+v, want http-metrics 8080", c.Ports)
	}
	if c.Resources.Requests.Cpu().String() != "250m" {
		t.Errorf("resources = %v", c.Resources)
	}
	wantValues := map[string]string{
		"ATLAS_KAFKA_BROKERS":            "kafka-0.kafka:9093,kafka-1.kafka:9093",
		"ATLAS_TOPIC":                    "atlas.domain-events.v1",
		"ATLAS_GROUP":                    "atlas." + ns + ".search",
		"ATLAS_START_OFFSET":             "earliest",
		"ATLAS_DEAD_LETTER_TOPIC":        "atlas.domain-events.v1.dlq",
		"ATLAS_KAFKA_TLS":                "true",
		"ATLAS_KAFKA_TLS_CA_FILE":        "/etc/atlas/kafka-tls/ca.crt",
		"ATLAS_KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
		"ATLAS_ELASTICSEARCH_ADDRESSES":  "https://es.search:9200",
		"ATLAS_ELASTICSEARCH_INDEX":      "atlas-items",
		"ATLAS_BATCH_SIZE":               "500",
		"ATLAS_BATCH_WAIT":               "250ms",
		"ATLAS_LOG_LEVEL":                "info",
		"ATLAS_HEALTH_ADDR":              ":8080",
		"ATLAS_ELASTICSEARCH_OPENSEARCH": "",
	}
	wantSecrets := map[string]string{
		"ATLAS_POSTGRES_DSN":           "pg/dsn",
		"ATLAS_KAFKA_SASL_USERNAME":    "kafka-auth/user",
		"ATLAS_KAFKA_SASL_PASSWORD":    "kafka-auth/password",
		"ATLAS_ELASTICSEARCH_USERNAME": "es/username",
		"ATLAS_ELASTICSEARCH_PASSWORD": "es/password",
		"ATLAS_ELASTICSEARCH_API_KEY":  "es/apiKey",
	}
	env1 := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env1[e.Name] = e
	}
	for name, want := range wantValues {
		got, ok := env1[name]
		switch {
		case want == "" && ok:
			t.Errorf("env %s = %q, want it absent", name, got.Value)
		case want != "" && (!ok || got.Value != want):
			t.Errorf("env %s = %q, want %q", name, got.Value, want)
		}
	}
	for name, want := range wantSecrets {
		e, ok := env1[name]
		if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s = %+v, want a secretKeyRef to %s", name, e, want)
			continue
		}
		if got := e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key; got != want {
			t.Errorf("env %s refers to %s, want %s", name, got, want)
		}
	}
	if e := env1["ATLAS_KAFKA_CLIENT_ID"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("ATLAS_KAFKA_CLIENT_ID = %+v, want the pod name", e)
	}
	if len(c.VolumeMounts) != 2 || c.VolumeMounts[1].MountPath != "/etc/atlas/kafka-tls" {
		t.Errorf("volume mounts = %+v, want /tmp and the Kafka CA", c.VolumeMounts)
	}

	migrate := pod.InitContainers[0]
	if !slices.Equal(migrate.Args, []string{"migrate", "up"}) || migrate.Image != testImage {
		t.Errorf("init container: image %q args %q, want `migrate up`", migrate.Image, migrate.Args)
	}
	assertRestricted(t, migrate)

	raw, _ := json.Marshal(dep)
	for _, secret := range []string{dsnValue, saslPassword, saslUser, esPassword} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the Deployment contains the Secret value %q", secret)
		}
	}
	if dep.Spec.Template.Annotations[workload.SecretChecksumAnnotation] == "" {
		t.Error("no secret checksum on the pod template")
	}

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "search-metrics"}}
	eventually(t, timeoutCreate, "Service created", func() error { return get(t, env, svc) })
	assertControlledBy(t, svc, ac)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || !mapsEqual(svc.Spec.Selector, wantSelector) {
		t.Errorf("service spec = %+v", svc.Spec)
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "search"}}
	eventually(t, timeoutCreate, "PodDisruptionBudget created", func() error { return get(t, env, pdb) })
	assertControlledBy(t, pdb, ac)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}

	// Status: the operator reports the group, selector and desired replicas.
	eventually(t, timeoutCreate, "status written", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if ac.Status.ObservedGeneration != ac.Generation || ac.Status.DesiredReplicas != 3 ||
			ac.Status.GroupID != "atlas."+ns+".search" || ac.Status.Selector != "app.kubernetes.io/instance=search,app.kubernetes.io/name=atlas-consumer" {
			return fmt.Errorf("status = %+v", ac.Status)
		}
		return nil
	})
}

// TestSpecChangeUpdatesDeployment: a spec change reaches the Deployment; going down to
// one replica removes the PodDisruptionBudget; runMigrations=false removes the init
// container.
func TestSpecChangeUpdatesDeployment(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ac := auditConsumer(ns, "audit")
	ac.Spec.Replicas = ptr.To[int32](2)
	mustCreate(t, env, ac)
	dep := waitDeployment(t, env, ns, "audit")
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}}
	eventually(t, timeoutCreate, "PodDisruptionBudget created", func() error { return get(t, env, pdb) })

	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) {
		ac.Spec.Replicas = ptr.To[int32](1)
		ac.Spec.Image = "registry.example/atlas:v2"
		ac.Spec.LogLevel = "debug"
		ac.Spec.Postgres.RunMigrations = ptr.To(false)
	})
	eventually(t, timeoutCreate, "Deployment updated", func() error {
		if err := get(t, env, dep); err != nil {
			return err
		}
		c := dep.Spec.Template.Spec.Containers[0]
		if *dep.Spec.Replicas != 1 || c.Image != "registry.example/atlas:v2" || envValue(c, "ATLAS_LOG_LEVEL") != "debug" || len(dep.Spec.Template.Spec.InitContainers) != 0 {
			return fmt.Errorf("replicas %d image %s log level %q init containers %d", *dep.Spec.Replicas, c.Image, envValue(c, "ATLAS_LOG_LEVEL"), len(dep.Spec.Template.Spec.InitContainers))
		}
		return nil
	})
	eventually(t, timeoutCreate, "PodDisruptionBudget removed at one replica", func() error {
		if err := get(t, env, pdb); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
}

// TestSecretChangeRollsPods: changing a referenced Secret value changes the pod
// template's checksum (which rolls the pods); an unrelated Secret does not.
func TestSecretChangeRollsPods(t *testing.T) {
	t.Parallel()
	env := operatorEnv(t)
	ns := newNamespace(t, env)
	secret := dsnSecret(t, env, ns, "pg", dsnValue)
	other := dsnSecret(t, env, ns, "unrelated", "x")
	mustCreate(t, env, auditConsumer(ns, "audit"))
	dep := waitDeployment(t, env, ns, "audit")
	before := dep.Spec.Template.Annotations[workload.SecretChecksumAnnotation]

	other.Data["dsn"] = []byte("y")
	if err := env.Client.Update(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	secret.Data["dsn"] = []byte(dsnValue + "?sslmode=require")
	if err := env.Client.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeoutCreate, "checksum changed", func() error {
		if err := get(t, env, dep); err != nil {
			return err
		}
		if after := dep.Spec.Template.Annotations[workload.SecretChecksumAnnotation]; after == before || after == "" {
			return fmt.Errorf("checksum still %q", after)
		}
		return nil
	})
	if strings.Contains(fmt.Sprint(dep.Spec.Template), "sslmode=require") {
		t.Error("the Secret value leaked into the pod template")
	}
}

// TestMissingSecretIsReported: a reference to a missing Secret creates nothing and
// says so in the status (Stalled for kstatus) and in an Event; creating the Secret
// lets the reconcile go on without any edit to the AtlasConsumer.
func TestMissingSecretIsReported(t *testing.T) {
	t.Parallel()
	env := operatorEnv(t)
	ns := newNamespace(t, env)
	ac := auditConsumer(ns, "audit")
	mustCreate(t, env, ac)
	eventually(t, timeoutCreate, "InvalidReference reported", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionStalled, metav1.ConditionTrue, "InvalidReference", `Secret "pg" (key "dsn") does not exist`)
	})
	assertKstatus(t, env, ac, "Failed")
	assertArgoHealth(t, env, ac, "Degraded")
	assertEvent(t, env, ns, "audit", "InvalidReference", `Secret "pg"`)
	if err := get(t, env, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Deployment exists despite the missing Secret: %v", err)
	}
	dsnSecret(t, env, ns, "pg", dsnValue)
	eventually(t, timeoutCreate, "Deployment created once the Secret exists", func() error {
		return get(t, env, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}})
	})
}

// TestNameConflictIsNotAdopted: a Deployment of the same name that the operator does
// not own is left alone, and the AtlasConsumer says why.
func TestNameConflictIsNotAdopted(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	labels := map[string]string{"app": "theirs"}
	theirs := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](5),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "theirs:1"}}},
			},
		},
	}
	mustCreate(t, env, theirs)
	ac := auditConsumer(ns, "audit")
	mustCreate(t, env, ac)
	eventually(t, timeoutCreate, "NameConflict reported", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionReady, metav1.ConditionFalse, "NameConflict", `Deployment named "audit" already exists and is not owned`)
	})
	assertEvent(t, env, ns, "audit", "NameConflict", "not owned")
	if err := get(t, env, theirs); err != nil {
		t.Fatal(err)
	}
	if *theirs.Spec.Replicas != 5 || theirs.Spec.Template.Spec.Containers[0].Image != "theirs:1" || len(theirs.OwnerReferences) != 0 {
		t.Fatalf("the foreign Deployment was changed: %+v", theirs.Spec)
	}
	if w := shared.writes.inNamespace(ns); slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "/deployments/") }) {
		t.Fatalf("the operator wrote to the foreign Deployment: %v", w)
	}
}

// TestNamesOutsideTheCache: the operator's cache holds only objects with its label, and
// it creates what the cache lacks without looking first. A create refused because the
// name is taken is followed by a read: its own Service, whose label someone removed, is
// taken back (the label restored, no conflict); a Service of the name that belongs to
// someone else is reported as a NameConflict and left as it is.
func TestNamesOutsideTheCache(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ctx := context.Background()

	ours := auditConsumer(ns, "ours")
	mustCreate(t, env, ours)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ours-metrics"}}
	eventually(t, timeoutCreate, "Service and status", func() error {
		if err := get(t, env, svc); err != nil {
			return err
		}
		if err := get(t, env, ours); err != nil {
			return err
		}
		if ours.Status.ObservedGeneration != ours.Generation {
			return fmt.Errorf("no status yet")
		}
		return nil
	})
	delete(svc.Labels, workload.LabelManagedBy)
	if err := env.Client.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeoutCreate, "the label restored", func() error {
		if err := get(t, env, svc); err != nil {
			return err
		}
		if svc.Labels[workload.LabelManagedBy] != workload.ManagedBy {
			return fmt.Errorf("labels %v", svc.Labels)
		}
		return nil
	})
	if err := get(t, env, ours); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(ours.Status.Conditions, atlasv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		t.Fatalf("its own Service taken for someone else's: %+v", c)
	}

	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other-metrics", Labels: map[string]string{"app": "theirs"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}, Selector: map[string]string{"app": "theirs"}},
	}
	mustCreate(t, env, theirs)
	other := auditConsumer(ns, "other")
	mustCreate(t, env, other)
	eventually(t, timeoutCreate, "NameConflict reported", func() error {
		if err := get(t, env, other); err != nil {
			return err
		}
		return wantCondition(other, atlasv1alpha1.ConditionStalled, metav1.ConditionTrue, "NameConflict", `Service named "other-metrics" already exists and is not owned`)
	})
	if err := get(t, env, theirs); err != nil {
		t.Fatal(err)
	}
	if len(theirs.OwnerReferences) != 0 || theirs.Labels[workload.LabelManagedBy] != "" || theirs.Spec.Selector["app"] != "theirs" {
		t.Fatalf("the foreign Service was changed: %+v %+v", theirs.ObjectMeta, theirs.Spec)
	}
	if w := shared.writes.inNamespace(ns); slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "/services/other-metrics") }) {
		t.Fatalf("the operator wrote to the foreign Service: %v", w)
	}
}

// TestStatusProgressingThenReady: while the Deployment rolls out the AtlasConsumer is
// Progressing (kstatus: InProgress); once the Deployment reports every pod ready, it is
// Ready (kstatus: Current).
func TestStatusProgressingThenReady(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ac := auditConsumer(ns, "audit")
	ac.Spec.Replicas = ptr.To[int32](2)
	mustCreate(t, env, ac)
	eventually(t, timeoutCreate, "Progressing", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if err := wantCondition(ac, atlasv1alpha1.ConditionProgressing, metav1.ConditionTrue, "RollingOut", "0 of 2 pods updated"); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionReady, metav1.ConditionFalse, "RollingOut", "")
	})
	assertKstatus(t, env, ac, "InProgress")
	assertArgoHealth(t, env, ac, "Progressing")

	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}}
	if err := get(t, env, dep); err != nil {
		t.Fatal(err)
	}
	// What the Deployment controller would report once both pods are up.
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}},
	}
	if err := env.Client.Status().Update(context.Background(), dep); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeoutCreate, "Ready", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if ac.Status.ReadyReplicas != 2 || ac.Status.Replicas != 2 {
			return fmt.Errorf("replicas %d ready %d", ac.Status.Replicas, ac.Status.ReadyReplicas)
		}
		for _, c := range []struct{ typ, status string }{
			{atlasv1alpha1.ConditionReady, "True"}, {atlasv1alpha1.ConditionProgressing, "False"},
			{atlasv1alpha1.ConditionDegraded, "False"}, {atlasv1alpha1.ConditionReconciling, "False"}, {atlasv1alpha1.ConditionStalled, "False"},
		} {
			if err := wantCondition(ac, c.typ, metav1.ConditionStatus(c.status), "", ""); err != nil {
				return err
			}
		}
		return nil
	})
	assertKstatus(t, env, ac, "Current")
	assertArgoHealth(t, env, ac, "Healthy")

	// A rollout past its deadline is Degraded (kstatus: Failed).
	dep.Status.Conditions = append(dep.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing,
		Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "audit-1" has timed out progressing.`})
	if err := env.Client.Status().Update(context.Background(), dep); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeoutCreate, "Degraded", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionDegraded, metav1.ConditionTrue, "RolloutFailed", "progress deadline")
	})
	assertKstatus(t, env, ac, "Failed")
	assertArgoHealth(t, env, ac, "Degraded")
}

// TestIdleReconcileSendsNoWrites: reconciling an unchanged AtlasConsumer again (here
// triggered by an annotation and by a touch of its Secret) sends no create, update,
// patch or delete request at all.
func TestIdleReconcileSendsNoWrites(t *testing.T) {
	t.Parallel()
	env := operatorEnv(t)
	ns := newNamespace(t, env)
	secret := dsnSecret(t, env, ns, "pg", dsnValue)
	ac := auditConsumer(ns, "audit")
	ac.Spec.Replicas = ptr.To[int32](3)
	mustCreate(t, env, ac)
	eventually(t, timeoutCreate, "settled", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if ac.Status.ObservedGeneration != ac.Generation || meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionReady) == nil {
			return fmt.Errorf("status not written yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // let the reconciles of the operator's own writes run out
	before := shared.writes.inNamespace(ns)
	reconciles := reconcileCount(t)

	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) {
		ac.Annotations = map[string]string{"example.com/touched": "1"}
	})
	secret.Labels = map[string]string{"touched": "1"}
	if err := env.Client.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeoutCreate, "two more reconciles", func() error {
		if n := reconcileCount(t); n < reconciles+2 {
			return fmt.Errorf("%v reconciles, want %v", n, reconciles+2)
		}
		return nil
	})
	time.Sleep(time.Second)
	if after := shared.writes.inNamespace(ns); len(after) != len(before) {
		t.Fatalf("idle reconciles wrote: %v", after[len(before):])
	}
	t.Logf("%d writes to settle, none for the idle reconciles", len(before))
}

// TestPauseAnnotation: with the pause annotation the operator leaves everything as it
// is and says so; removing it applies what changed meanwhile.
func TestPauseAnnotation(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ac := auditConsumer(ns, "audit")
	mustCreate(t, env, ac)
	dep := waitDeployment(t, env, ns, "audit")

	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) {
		ac.Annotations = map[string]string{atlasv1alpha1.PauseReconciliationAnnotation: "true"}
	})
	eventually(t, timeoutCreate, "ReconciliationPaused", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionReconciliationPaused, metav1.ConditionTrue, "PausedByAnnotation", "")
	})
	assertArgoHealth(t, env, ac, "Suspended")
	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) { ac.Spec.Replicas = ptr.To[int32](4) })
	time.Sleep(2 * time.Second)
	if err := get(t, env, dep); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 1 {
		t.Fatalf("paused, yet the Deployment went to %d replicas", *dep.Spec.Replicas)
	}
	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) {
		delete(ac.Annotations, atlasv1alpha1.PauseReconciliationAnnotation)
	})
	eventually(t, timeoutCreate, "resumed", func() error {
		if err := get(t, env, dep); err != nil {
			return err
		}
		if *dep.Spec.Replicas != 4 {
			return fmt.Errorf("replicas %d", *dep.Spec.Replicas)
		}
		if err := get(t, env, ac); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(ac.Status.Conditions, atlasv1alpha1.ConditionReconciliationPaused); c != nil {
			return fmt.Errorf("still %+v", c)
		}
		return nil
	})
}

// TestSuspendScalesToZero: suspend wins over replicas and keeps everything else.
func TestSuspendScalesToZero(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ac := auditConsumer(ns, "audit")
	ac.Spec.Replicas = ptr.To[int32](3)
	mustCreate(t, env, ac)
	dep := waitDeployment(t, env, ns, "audit")
	update(t, env, ac, func(ac *atlasv1alpha1.AtlasConsumer) { ac.Spec.Suspend = true })
	waitReplicas(t, env, dep, 0, timeoutCreate, "scaled to zero")
	assertEvent(t, env, ns, "audit", "ScaledDown", "scaled from 3 to 0 replicas: spec.suspend")
	if err := get(t, env, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit-metrics"}}); err != nil {
		t.Fatalf("the Service went away with suspend: %v", err)
	}
}

// TestScaleSubresource: the scale subresource reads and writes spec.replicas, and the
// Deployment follows.
func TestScaleSubresource(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	ctx := context.Background()
	ac := auditConsumer(ns, "audit")
	mustCreate(t, env, ac)
	dep := waitDeployment(t, env, ns, "audit")

	scale := &autoscalingv1.Scale{}
	eventually(t, timeoutCreate, "scale reports the selector", func() error {
		if err := env.Client.SubResource("scale").Get(ctx, ac, scale); err != nil {
			return err
		}
		if scale.Spec.Replicas != 1 || scale.Status.Selector != "app.kubernetes.io/instance=audit,app.kubernetes.io/name=atlas-consumer" {
			return fmt.Errorf("scale = %+v", scale)
		}
		return nil
	})
	scale.Spec.Replicas = 4
	if err := env.Client.SubResource("scale").Update(ctx, ac, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("update scale: %v", err)
	}
	waitReplicas(t, env, dep, 4, timeoutCreate, "Deployment scaled")
	if err := get(t, env, ac); err != nil || *ac.Spec.Replicas != 4 {
		t.Fatalf("spec.replicas = %v (%v), want 4", ac.Spec.Replicas, err)
	}
}

func mustCreate(t testing.TB, env *kube.Env, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// update re-reads the AtlasConsumer and applies edit, retrying on conflicts.
func update(t testing.TB, env *kube.Env, ac *atlasv1alpha1.AtlasConsumer, edit func(*atlasv1alpha1.AtlasConsumer)) {
	t.Helper()
	eventually(t, 10*time.Second, "update "+ac.Name, func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		edit(ac)
		return env.Client.Update(context.Background(), ac)
	})
}

func secretKey(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func assertControlledBy(t testing.TB, obj client.Object, ac *atlasv1alpha1.AtlasConsumer) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != ac.UID || ref.Kind != "AtlasConsumer" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("%T %s: controller reference %+v, want the AtlasConsumer %s", obj, obj.GetName(), ref, ac.UID)
	}
}

func assertRestricted(t testing.TB, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		!ptr.Deref(sc.RunAsNonRoot, false) || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container %s security context %+v is not restricted", c.Name, sc)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// wantCondition checks a condition's status and, when given, its reason and a part of
// its message.
func wantCondition(ac *atlasv1alpha1.AtlasConsumer, typ string, status metav1.ConditionStatus, reason, msgPart string) error {
	c := meta.FindStatusCondition(ac.Status.Conditions, typ)
	switch {
	case c == nil:
		return fmt.Errorf("no %s condition in %+v", typ, ac.Status.Conditions)
	case c.Status != status || (reason != "" && c.Reason != reason) || !strings.Contains(c.Message, msgPart):
		return fmt.Errorf("%s = %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, status, reason, msgPart)
	}
	return nil
}
