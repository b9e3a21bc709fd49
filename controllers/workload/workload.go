// Package workload builds, with pure functions, the Kubernetes objects an AtlasConsumer
// is reconciled into: the consumer Deployment, its metrics Service and its
// PodDisruptionBudget. The consumer's settings reach the pod as the ATLAS_* environment
// variables the binary reads (flagenv), named from the same flag constants the consumer
// registers, so the two sides cannot drift apart.
package workload

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
)

// Labels every object of a consumer carries.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	// AppName is the app.kubernetes.io/name of consumer objects.
	AppName = "atlas-consumer"
	// ManagedBy is the app.kubernetes.io/managed-by of consumer objects, and the field
	// owner of the operator's server-side applies.
	ManagedBy = "atlas-operator"

	// SecretChecksumAnnotation on the pod template changes when a referenced Secret
	// value changes, which rolls the pods.
	SecretChecksumAnnotation = "events.atlas.io/secret-checksum"
)

// Config is what the operator decides besides the spec.
type Config struct {
	// Image is the consumer image when spec.image is empty (the operator's own image).
	Image string
	// Replicas is the number of pods to run (the scaling decision).
	Replicas int32
	// SecretChecksum summarises the values of the referenced Secret keys.
	SecretChecksum string
}

// Names of a consumer's objects.

// DeploymentName is the name of the consumer Deployment (and PodDisruptionBudget).
func DeploymentName(ac *atlasv1alpha1.AtlasConsumer) string { return ac.Name }

// ServiceName is the name of the consumer's metrics Service.
func ServiceName(ac *atlasv1alpha1.AtlasConsumer) string { return ac.Name + "-metrics" }

// NetworkPolicyName is the name of the consumer's NetworkPolicy: the AtlasConsumer's, like
// the Deployment and the PodDisruptionBudget, which select the same pods (the Service's
// suffix says it serves only the metrics).
func NetworkPolicyName(ac *atlasv1alpha1.AtlasConsumer) string { return ac.Name }

// GroupID is the consumer group in use: spec.kafka.groupID, or "atlas.<namespace>.<name>".
func GroupID(ac *atlasv1alpha1.AtlasConsumer) string {
	if ac.Spec.Kafka.GroupID != "" {
		return ac.Spec.Kafka.GroupID
	}
	return "atlas." + ac.Namespace + "." + ac.Name
}

// Topic is the topic consumed (the API server defaults it; builders do too, for objects
// that were never stored).
func Topic(ac *atlasv1alpha1.AtlasConsumer) string {
	if ac.Spec.Kafka.Topic != "" {
		return ac.Spec.Kafka.Topic
	}
	return names.Topic
}

// StartEarliest says whether a group without commits starts at the earliest offset.
func StartEarliest(ac *atlasv1alpha1.AtlasConsumer) bool {
	return ac.Spec.Kafka.StartOffset != atlasv1alpha1.StartOffsetLatest
}

// SelectorLabels select the pods of one consumer; they never change.
func SelectorLabels(ac *atlasv1alpha1.AtlasConsumer) map[string]string {
	return map[string]string{LabelName: AppName, LabelInstance: ac.Name}
}

// Selector is SelectorLabels as a label selector string (status.selector).
func Selector(ac *atlasv1alpha1.AtlasConsumer) string {
	sel := SelectorLabels(ac)
	return LabelInstance + "=" + sel[LabelInstance] + "," + LabelName + "=" + sel[LabelName]
}

// Labels are the labels of every object of a consumer.
func Labels(ac *atlasv1alpha1.AtlasConsumer) map[string]string {
	l := SelectorLabels(ac)
	l[LabelComponent] = string(ac.Spec.Mode)
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = "atlas"
	return l
}

// podLabels are the user's pod labels with the operator's on top.
func podLabels(ac *atlasv1alpha1.AtlasConsumer) map[string]string {
	l := maps.Clone(ac.Spec.Pod.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, Labels(ac))
	return l
}

// ReplicasFromSpec is the replica count without autoscaling: 0 when suspended,
// spec.replicas, or 1.
func ReplicasFromSpec(ac *atlasv1alpha1.AtlasConsumer) int32 {
	switch {
	case ac.Spec.Suspend:
		return 0
	case ac.Spec.Replicas != nil:
		return *ac.Spec.Replicas
	default:
		return 1
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func joinComma(s []string) string { return strings.Join(s, ",") }

// SecretKeyRef is one Secret key an AtlasConsumer references.
type SecretKeyRef struct {
	Name, Key string
	// Optional keys (and Secrets) may be missing.
	Optional bool
	// Live keys reach the pods as files they read again when they need them (an OAuth
	// token): a change needs no restart, so it is left out of the pods' checksum.
	Live bool
}

// SecretRefs lists every Secret key the consumer pods read, in a stable order.
func SecretRefs(ac *atlasv1alpha1.AtlasConsumer) []SecretKeyRef {
	var refs []SecretKeyRef
	add := func(sel *corev1.SecretKeySelector) {
		if sel != nil {
			refs = append(refs, SecretKeyRef{Name: sel.Name, Key: sel.Key, Optional: sel.Optional != nil && *sel.Optional})
		}
	}
	add(&ac.Spec.Postgres.DSNSecretRef)
	if tls := ac.Spec.Kafka.TLS; tls != nil {
		add(tls.CASecretRef)
		add(tls.CertSecretRef)
		add(tls.KeySecretRef)
	}
	if sasl := ac.Spec.Kafka.SASL; sasl != nil {
		add(sasl.UsernameSecretRef)
		add(sasl.PasswordSecretRef)
		if o := sasl.OAuthBearer; o != nil {
			if o.TokenSecretRef != nil {
				// read from its file at every authentication: a new token needs no restart
				refs = append(refs, SecretKeyRef{Name: o.TokenSecretRef.Name, Key: o.TokenSecretRef.Key,
					Optional: o.TokenSecretRef.Optional != nil && *o.TokenSecretRef.Optional, Live: true})
			}
			add(o.ClientIDSecretRef)
			add(o.ClientSecretSecretRef)
		}
	}
	if es := ac.Spec.Elasticsearch; es != nil && ac.Spec.Mode == atlasv1alpha1.AtlasConsumerModeIndexer {
		if es.CredentialsSecretRef != nil {
			for _, key := range []string{ElasticsearchUsernameKey, ElasticsearchPasswordKey, ElasticsearchAPIKeyKey} {
				refs = append(refs, SecretKeyRef{Name: es.CredentialsSecretRef.Name, Key: key, Optional: true})
			}
		}
		// A CA from a ConfigMap is not among them: the operator does not read ConfigMaps,
		// so a change to it reaches the pods at their next restart.
		if tls := es.TLS; tls != nil {
			add(tls.CASecretRef)
			add(tls.CertSecretRef)
			add(tls.KeySecretRef)
		}
	}
	return refs
}

// SecretNames are the names of the Secrets the consumer references, deduplicated.
func SecretNames(ac *atlasv1alpha1.AtlasConsumer) []string {
	var names []string
	for _, ref := range SecretRefs(ac) {
		if !slices.Contains(names, ref.Name) {
			names = append(names, ref.Name)
		}
	}
	return names
}

// SkipsSearchVerification says the indexer is told not to verify the search server's
// certificate (spec.elasticsearch.tls.insecureSkipVerify).
func SkipsSearchVerification(ac *atlasv1alpha1.AtlasConsumer) bool {
	es := ac.Spec.Elasticsearch
	return ac.Spec.Mode == atlasv1alpha1.AtlasConsumerModeIndexer && es != nil && es.TLS != nil && es.TLS.InsecureSkipVerify
}
