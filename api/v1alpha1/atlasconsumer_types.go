/*
Copyright 2026 The Atlas Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AtlasConsumerMode selects which of the Atlas consumers an AtlasConsumer runs.
// +kubebuilder:validation:Enum=audit;indexer
type AtlasConsumerMode string

const (
	// AtlasConsumerModeAudit runs `atlas consume audit`: every event is stored in the
	// Postgres audit_events table, deduplicated by event_id.
	AtlasConsumerModeAudit AtlasConsumerMode = "audit"

	// AtlasConsumerModeIndexer runs `atlas consume indexer`: the search index of items is
	// kept in step with Postgres.
	AtlasConsumerModeIndexer AtlasConsumerMode = "indexer"
)

// PauseReconciliationAnnotation, set to "true" on an AtlasConsumer, stops the operator
// from reconciling it (for incident work): nothing it owns is changed until the
// annotation is removed.
const PauseReconciliationAnnotation = "events.atlas.io/pause-reconciliation"

// StartOffset is where a consumer group without committed offsets starts reading.
// +kubebuilder:validation:Enum=earliest;latest
type StartOffset string

const (
	// StartOffsetEarliest starts at the oldest record the topic still holds.
	StartOffsetEarliest StartOffset = "earliest"
	// StartOffsetLatest starts at the end: only records published afterwards are read.
	StartOffsetLatest StartOffset = "latest"
)

// SASLMechanism is a Kafka SASL authentication mechanism.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512;OAUTHBEARER;AWS_MSK_IAM
type SASLMechanism string

// KafkaSpec says where a consumer reads its events from.
// +kubebuilder:validation:XValidation:rule="(has(self.groupID) ? self.groupID == (has(oldSelf.groupID) ? oldSelf.groupID : 'x/none') : !has(oldSelf.groupID)) || (has(self.allowGroupIDChange) && self.allowGroupIDChange)",message="groupID cannot be changed: a new consumer group starts from spec.kafka.startOffset and re-reads or skips events; set allowGroupIDChange: true to change it on purpose"
type KafkaSpec struct {
	// bootstrapServers lists the Kafka brokers the consumer first connects to, each as
	// host:port (for example "kafka-0.kafka.atlas.svc:9092" or "[fd00::1]:9092"). The consumer discovers the
	// rest of the cluster from them. At least one is required.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):[0-9]{1,5}$`
	BootstrapServers []string `json:"bootstrapServers"`

	// topic is the Kafka topic the consumer reads domain events from. It must be a valid
	// Kafka topic name: 1 to 249 characters among ASCII letters, digits, '.', '_' and '-'.
	// Defaults to "atlas.domain-events.v1".
	// +optional
	// +kubebuilder:default="atlas.domain-events.v1"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]{1,249}$`
	Topic string `json:"topic,omitempty"`

	// groupID is the Kafka consumer group the consumer joins; replicas of one
	// AtlasConsumer share it and so split the topic's partitions between them. When
	// empty, the group is "atlas.<namespace>.<name>" (status.groupID shows the one in
	// use). Changing it is refused unless allowGroupIDChange is true, because a new group
	// starts over from startOffset.
	// +optional
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	GroupID string `json:"groupID,omitempty"`

	// allowGroupIDChange opts in to changing groupID. The new group has no committed
	// offsets: it starts from startOffset.
	// +optional
	AllowGroupIDChange bool `json:"allowGroupIDChange,omitempty"`

	// startOffset is where a consumer group without committed offsets starts: "earliest"
	// (the oldest record still held, the default) or "latest" (only new records).
	// +optional
	// +kubebuilder:default=earliest
	StartOffset StartOffset `json:"startOffset,omitempty"`

	// deadLetterTopic receives the records the consumer cannot process (malformed JSON,
	// invalid envelopes, rejected documents), with the reason in their headers. Defaults
	// to "<topic>.dlq".
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]{1,249}$`
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`

	// tls enables TLS to the brokers.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`

	// sasl enables SASL authentication to the brokers.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`
}

// KafkaTLS configures TLS to the Kafka brokers. Without a CA the system roots are used.
// +kubebuilder:validation:XValidation:rule="has(self.certSecretRef) == has(self.keySecretRef)",message="certSecretRef and keySecretRef go together: a client certificate needs its key"
type KafkaTLS struct {
	// caSecretRef selects the PEM CA bundle that signs the brokers' certificates.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="caSecretRef needs the name of a Secret and a key in it"
	CASecretRef *corev1.SecretKeySelector `json:"caSecretRef,omitempty"`
	// certSecretRef selects the PEM client certificate, for mutual TLS.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="certSecretRef needs the name of a Secret and a key in it"
	CertSecretRef *corev1.SecretKeySelector `json:"certSecretRef,omitempty"`
	// keySecretRef selects the PEM private key of the client certificate.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="keySecretRef needs the name of a Secret and a key in it"
	KeySecretRef *corev1.SecretKeySelector `json:"keySecretRef,omitempty"`
}

// KafkaSASL configures SASL authentication to the Kafka brokers.
// +kubebuilder:validation:XValidation:rule="!(self.mechanism in ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']) || (has(self.usernameSecretRef) && has(self.passwordSecretRef))",message="PLAIN and SCRAM need usernameSecretRef and passwordSecretRef"
// +kubebuilder:validation:XValidation:rule="self.mechanism in ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] || !(has(self.usernameSecretRef) || has(self.passwordSecretRef))",message="usernameSecretRef and passwordSecretRef are for PLAIN and SCRAM only"
// +kubebuilder:validation:XValidation:rule="(self.mechanism == 'OAUTHBEARER') == has(self.oauthBearer)",message="oauthBearer is required with mechanism OAUTHBEARER, and only then"
type KafkaSASL struct {
	// mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, or AWS_MSK_IAM (Amazon
	// MSK's IAM authentication: the pods sign with the AWS credentials the AWS SDK's default
	// chain finds, e.g. IRSA or EKS Pod Identity through podOverrides.serviceAccountName; the
	// operator, which reads the lag, needs such credentials too).
	// +required
	Mechanism SASLMechanism `json:"mechanism"`
	// usernameSecretRef selects the SASL user name (PLAIN and SCRAM).
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="usernameSecretRef needs the name of a Secret and a key in it"
	UsernameSecretRef *corev1.SecretKeySelector `json:"usernameSecretRef,omitempty"`
	// passwordSecretRef selects the SASL password (PLAIN and SCRAM).
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="passwordSecretRef needs the name of a Secret and a key in it"
	PasswordSecretRef *corev1.SecretKeySelector `json:"passwordSecretRef,omitempty"`
	// oauthBearer says where OAUTHBEARER tokens come from.
	// +optional
	OAuthBearer *KafkaOAuthBearer `json:"oauthBearer,omitempty"`
}

// KafkaOAuthBearer is where OAUTHBEARER tokens come from: a token kept current in a Secret
// (tokenSecretRef), or the OAuth 2.0 client credentials grant against an identity provider
// (tokenURL with a client id and secret).
// +kubebuilder:validation:XValidation:rule="has(self.tokenSecretRef) != has(self.tokenURL)",message="give either tokenSecretRef or tokenURL (the client credentials grant)"
// +kubebuilder:validation:XValidation:rule="has(self.tokenURL) == (has(self.clientIDSecretRef) && has(self.clientSecretSecretRef))",message="tokenURL needs clientIDSecretRef and clientSecretSecretRef, and they need tokenURL"
// +kubebuilder:validation:XValidation:rule="!has(self.scopes) || has(self.tokenURL)",message="scopes are asked for with the client credentials grant: they need tokenURL"
type KafkaOAuthBearer struct {
	// tokenSecretRef selects a token (a JWT) kept current by something else. The pods read
	// it from a mounted file at every authentication, so a rotated token is used without
	// restarting them.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="tokenSecretRef needs the name of a Secret and a key in it"
	TokenSecretRef *corev1.SecretKeySelector `json:"tokenSecretRef,omitempty"`
	// tokenURL is the identity provider's token endpoint for the client credentials grant,
	// e.g. "https://keycloak.example/realms/kafka/protocol/openid-connect/token".
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +kubebuilder:validation:MaxLength=2048
	TokenURL string `json:"tokenURL,omitempty"`
	// clientIDSecretRef selects the client id of the client credentials grant.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="clientIDSecretRef needs the name of a Secret and a key in it"
	ClientIDSecretRef *corev1.SecretKeySelector `json:"clientIDSecretRef,omitempty"`
	// clientSecretSecretRef selects the client secret of the client credentials grant.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="clientSecretSecretRef needs the name of a Secret and a key in it"
	ClientSecretSecretRef *corev1.SecretKeySelector `json:"clientSecretSecretRef,omitempty"`
	// scopes are asked for with the client credentials grant.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	Scopes []string `json:"scopes,omitempty"`
}

// PostgresSpec says where the consumer's Postgres database is.
type PostgresSpec struct {
	// dsnSecretRef selects the Secret key holding the Postgres connection string
	// ("postgres://user:password@host:5432/atlas?sslmode=require"). It reaches the pod
	// as an environment variable from the Secret, never in the pod spec.
	// +required
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="dsnSecretRef needs the name of a Secret and a key in it"
	DSNSecretRef corev1.SecretKeySelector `json:"dsnSecretRef"`

	// runMigrations runs `atlas migrate up` in an init container before the consumer
	// starts (default true). Set it to false when the schema is migrated elsewhere; the
	// consumer then refuses to start on an out-of-date schema.
	// +optional
	// +kubebuilder:default=true
	RunMigrations *bool `json:"runMigrations,omitempty"`
}

// ElasticsearchSpec says where the indexer writes its search index.
type ElasticsearchSpec struct {
	// addresses lists the search server URLs, e.g. "https://es-http.search.svc:9200".
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^https?://[^\s]+$`
	Addresses []string `json:"addresses"`

	// credentialsSecretRef names a Secret with either the keys "username" and
	// "password" or the key "apiKey".
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="credentialsSecretRef needs the name of a Secret"
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// index is the alias the indexer writes to (default "atlas-items"); the first start
	// creates the versioned index "<index>-v1" behind it.
	// +optional
	// +kubebuilder:default=atlas-items
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9._-]{0,200}$`
	Index string `json:"index,omitempty"`

	// openSearch says the server is OpenSearch rather than Elasticsearch.
	// +optional
	OpenSearch bool `json:"openSearch,omitempty"`

	// tls configures how the indexer verifies the search server (a private CA, e.g. the one
	// Elastic's operator creates in "<cluster>-es-http-certs-public") and authenticates to
	// it with a client certificate. Without it, https addresses are verified against the
	// system roots.
	// +optional
	TLS *ElasticsearchTLS `json:"tls,omitempty"`
}

// ElasticsearchTLS configures TLS to the search server.
// +kubebuilder:validation:XValidation:rule="has(self.certSecretRef) == has(self.keySecretRef)",message="certSecretRef and keySecretRef go together: a client certificate needs its key"
// +kubebuilder:validation:XValidation:rule="!(has(self.caSecretRef) && has(self.caConfigMapRef))",message="caSecretRef and caConfigMapRef are alternatives: give the CA bundle once"
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && (has(self.caSecretRef) || has(self.caConfigMapRef)))",message="insecureSkipVerify turns verification off, so the CA would never be used: give the CA and leave insecureSkipVerify unset"
type ElasticsearchTLS struct {
	// caSecretRef selects the PEM CA bundle that signs the search server's certificate,
	// from a Secret (for example key "ca.crt" of Elastic's "<cluster>-es-http-certs-public").
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="caSecretRef needs the name of a Secret and a key in it"
	CASecretRef *corev1.SecretKeySelector `json:"caSecretRef,omitempty"`
	// caConfigMapRef selects the PEM CA bundle from a ConfigMap (for example one that
	// trust-manager distributes).
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="caConfigMapRef needs the name of a ConfigMap and a key in it"
	CAConfigMapRef *corev1.ConfigMapKeySelector `json:"caConfigMapRef,omitempty"`
	// certSecretRef selects the PEM client certificate the indexer presents.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="certSecretRef needs the name of a Secret and a key in it"
	CertSecretRef *corev1.SecretKeySelector `json:"certSecretRef,omitempty"`
	// keySecretRef selects the PEM private key of the client certificate.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0 && size(self.key) > 0",message="keySecretRef needs the name of a Secret and a key in it"
	KeySecretRef *corev1.SecretKeySelector `json:"keySecretRef,omitempty"`
	// insecureSkipVerify turns verification of the server's certificate OFF: anyone on the
	// network path can read and change what the indexer writes. For tests only; the
	// operator records a Warning event and the indexer logs a warning at every start.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// AutoscalingSpec scales the consumer on its consumer group's lag, by one of two policies:
// lagPerReplica (the default, 1000) or targetDrainTime.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not be greater than maxReplicas"
// +kubebuilder:validation:XValidation:rule="!(has(self.lagPerReplica) && has(self.targetDrainTime))",message="set lagPerReplica or targetDrainTime, not both: lagPerReplica asks for one pod per so many records of lag, targetDrainTime for the fewest pods that drain the lag within that time"
// +kubebuilder:validation:XValidation:rule="!has(self.targetDrainTime) || !has(self.pollInterval) || duration(self.targetDrainTime) >= duration(self.pollInterval) + duration(self.pollInterval)",message="targetDrainTime must be at least twice pollInterval: the rates it scales on are measured between two polls"
// +kubebuilder:validation:XValidation:rule="!has(self.activationLag) || (has(self.minReplicas) && self.minReplicas == 0)",message="activationLag only applies to a consumer that scales to zero: set minReplicas to 0, or remove activationLag"
type AutoscalingSpec struct {
	// minReplicas is the fewest pods to run (default 1). 0 lets the consumer scale to
	// zero when it has no lag; it comes back when lag appears.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most pods to run. The topic's partition count caps it too:
	// a consumer beyond one per partition would sit idle.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// lagPerReplica is the lag (records not yet consumed) one pod is expected to work
	// off; desired replicas = ceil(total lag / lagPerReplica). Default 1000 when
	// targetDrainTime is not set either.
	// +optional
	// +kubebuilder:validation:Minimum=1
	LagPerReplica int64 `json:"lagPerReplica,omitempty"`

	// targetDrainTime scales on how far behind the consumer may fall instead of a lag per
	// replica: from successive lag readings the operator measures how fast records arrive
	// and how fast one pod consumes them while it has work, and runs the fewest pods that
	// keep up and drain the current lag within this time (a count that spreads the
	// partitions evenly: on 6 partitions, 4 pods drain no faster than 3). Until it has
	// measured a pod's rate, a consumer with lag runs every pod that can take a partition
	// (up to maxReplicas). What it measured is in status.drain and in the ScaledUp and
	// ScaledDown Events. At least twice pollInterval; not together with lagPerReplica.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="targetDrainTime must be between 10s and 24h"
	TargetDrainTime *metav1.Duration `json:"targetDrainTime,omitempty"`

	// activationLag keeps a consumer scaled to zero at zero while its lag is below it:
	// a few records do not wake it (they wait until more arrive). Only with minReplicas 0.
	// A group that starts at the latest offset and has no committed position still wakes,
	// or records arriving meanwhile would be skipped.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActivationLag *int64 `json:"activationLag,omitempty"`

	// limitToPartitionsWithLag caps the replicas at the number of partitions that have
	// lag (at least one): when all the lag sits on one partition, more pods cannot help.
	// +optional
	LimitToPartitionsWithLag bool `json:"limitToPartitionsWithLag,omitempty"`

	// scaleDownStabilization is how long a lower replica count must be recommended
	// before the consumer scales down (default 5m). Scaling up is immediate.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('24h')",message="scaleDownStabilization must be between 0s and 24h"
	ScaleDownStabilization *metav1.Duration `json:"scaleDownStabilization,omitempty"`

	// pollInterval is how often the operator reads the lag (default 30s, at least 5s).
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('1h')",message="pollInterval must be between 5s and 1h"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// excludeStuckPartitions leaves out of the scaling lag a partition whose committed
	// offset did not move between two polls although it has lag (a stuck or poison
	// partition), so one such partition cannot push the fleet to maxReplicas.
	// +optional
	ExcludeStuckPartitions bool `json:"excludeStuckPartitions,omitempty"`
}

// BatchSpec tunes how many events the consumer handles per round trip.
type BatchSpec struct {
	// size is the most events per batch (default 2000).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Size *int32 `json:"size,omitempty"`

	// maxWait is how long a batch waits to fill up (default 100ms).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1m')",message="batch.maxWait must be greater than 0s and at most 1m"
	MaxWait *metav1.Duration `json:"maxWait,omitempty"`
}

// LogLevel is the consumer's log level.
// +kubebuilder:validation:Enum=debug;info;warn;error
type LogLevel string

// PodOverrides are added to the consumer pods.
type PodOverrides struct {
	// labels are added to the pods (the operator's own labels win on a clash).
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations are added to the pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// nodeSelector constrains the pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// tolerations let the pods run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// affinity sets the pods' scheduling affinity.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// serviceAccountName runs the pods as this ServiceAccount (default: the namespace's
	// "default" one).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// priorityClassName sets the pods' priority class.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// NetworkPolicySpec asks the operator for a NetworkPolicy around the consumer pods: in,
// only the metrics port; out, only DNS and the ports of the Kafka brokers, of Postgres
// and (indexer) of the search servers. The ports come from spec.kafka.bootstrapServers,
// from the Postgres DSN in its Secret (5432 when it names none) and from
// spec.elasticsearch.addresses (443 for https and 80 for http when a URL has no port).
// A NetworkPolicy only takes effect where the cluster's network plugin enforces them.
type NetworkPolicySpec struct {
	// egressTo are the destinations the consumer may reach on those ports: where the
	// brokers, Postgres and the search servers are (namespaceSelector, podSelector or
	// ipBlock). Empty: any destination, on those ports only; a bootstrap server given as
	// an IP address then narrows its port to that address. Kafka clients connect to
	// every broker the bootstrap servers advertise: when they are elsewhere, list them
	// here. DNS (port 53) stays open to any destination either way, as the operator does
	// not know where the cluster's DNS runs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	EgressTo []networkingv1.NetworkPolicyPeer `json:"egressTo,omitempty"`

	// metricsFrom are the clients that may scrape the metrics port (Prometheus).
	// Empty: anyone, on that port only.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	MetricsFrom []networkingv1.NetworkPolicyPeer `json:"metricsFrom,omitempty"`

	// extraEgressPorts are more ports the consumer may reach (at egressTo when given),
	// for what the spec does not tell: brokers advertised on other ports than the
	// bootstrap ones, a connection pooler in front of Postgres. Each needs a port (or a
	// range with endPort): a protocol alone would open every port.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(p, has(p.port))",message="each extraEgressPorts entry needs a port: without one it would allow every port of its protocol"
	ExtraEgressPorts []networkingv1.NetworkPolicyPort `json:"extraEgressPorts,omitempty"`
}

// AtlasConsumerSpec defines the desired state of an AtlasConsumer.
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="replicas and autoscaling are mutually exclusive: set replicas for a fixed count, or autoscaling for lag-driven scaling"
// +kubebuilder:validation:XValidation:rule="self.mode != 'indexer' || has(self.elasticsearch)",message="elasticsearch is required when mode is indexer"
// +kubebuilder:validation:XValidation:rule="self.mode == 'indexer' || !has(self.elasticsearch)",message="elasticsearch is only for mode indexer: remove it for mode audit"
type AtlasConsumerSpec struct {
	// mode selects the consumer to run: "audit" stores every event in Postgres
	// audit_events, deduplicated by event_id; "indexer" keeps the search index of items
	// in step with Postgres. The mode cannot be changed after creation: delete and
	// recreate the AtlasConsumer instead.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="mode is immutable: delete and recreate the AtlasConsumer to change it"
	Mode AtlasConsumerMode `json:"mode"`

	// kafka says where the consumer reads its events from.
	// +required
	Kafka KafkaSpec `json:"kafka"`

	// postgres says where the consumer's database is: the audit table, or the items the
	// indexer reads.
	// +required
	Postgres PostgresSpec `json:"postgres"`

	// elasticsearch says where the indexer writes; required for mode indexer and
	// forbidden for mode audit.
	// +optional
	Elasticsearch *ElasticsearchSpec `json:"elasticsearch,omitempty"`

	// replicas is a fixed number of consumer pods. Replicas beyond the topic's
	// partition count sit idle. When neither replicas nor autoscaling is set, one pod
	// runs. Not allowed together with autoscaling. `kubectl scale` sets it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// autoscaling scales the consumer on its consumer group's lag.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// suspend scales the consumer to zero pods and keeps everything else; it wins over
	// replicas and autoscaling.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// image overrides the consumer image (default: the operator's own image, which
	// carries both consumers).
	// +optional
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the consumer container (Kubernetes' default when empty).
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// resources of the consumer container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// batch tunes the consumer's batches.
	// +optional
	Batch BatchSpec `json:"batch,omitempty"`

	// logLevel is the consumer's log level (default info).
	// +optional
	// +kubebuilder:default=info
	LogLevel LogLevel `json:"logLevel,omitempty"`

	// pod adds labels, annotations and scheduling settings to the consumer pods.
	// +optional
	Pod PodOverrides `json:"pod,omitempty"`

	// networkPolicy, when present (even empty: {}), makes the operator keep a
	// NetworkPolicy, named like the AtlasConsumer, that lets the consumer pods talk only
	// to what their spec names; removing it removes that NetworkPolicy.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`
}

// PartitionLag is the lag of one partition.
type PartitionLag struct {
	// partition is the partition number.
	Partition int32 `json:"partition"`
	// lag is the partition's records not yet consumed by the group.
	Lag int64 `json:"lag"`
}

// LagStatus is the consumer group's lag as last measured.
type LagStatus struct {
	// total is the sum of the lag of every partition.
	Total int64 `json:"total"`
	// partitions is the topic's partition count.
	Partitions int32 `json:"partitions"`
	// laggingPartitions counts partitions with a lag above zero.
	LaggingPartitions int32 `json:"laggingPartitions"`
	// max is the largest partition lag.
	Max int64 `json:"max"`
	// top lists the partitions with the largest lag (at most 5).
	// +optional
	Top []PartitionLag `json:"top,omitempty"`
	// excludedPartitions are stuck partitions left out of the scaling lag.
	// +optional
	ExcludedPartitions []int32 `json:"excludedPartitions,omitempty"`
	// measuredAt is when the lag was read with these figures. status.lag is rewritten only
	// when a figure changes, so a steady lag costs no write per poll; the ScalingActive
	// condition says whether the lag is still being read.
	MeasuredAt metav1.Time `json:"measuredAt"`
}

// Condition types of an AtlasConsumer.
const (
	// ConditionReady is True when the consumer runs with every desired pod ready (or is
	// suspended on purpose).
	ConditionReady = "Ready"
	// ConditionProgressing is True while a change is rolling out.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the consumer cannot reach its desired state.
	ConditionDegraded = "Degraded"
	// ConditionReconciling mirrors Progressing for kstatus (Flux, Argo CD, kpt).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True, for kstatus, when the operator cannot make progress
	// without a change from the user (a name conflict, a missing Secret).
	ConditionStalled = "Stalled"
	// ConditionScalingActive is True when autoscaling could compute a replica count.
	ConditionScalingActive = "ScalingActive"
	// ConditionScalingLimited is True when minReplicas, maxReplicas or the partition
	// count bound the desired replicas.
	ConditionScalingLimited = "ScalingLimited"
	// ConditionReconciliationPaused is True while the pause annotation is set.
	ConditionReconciliationPaused = "ReconciliationPaused"
)

// AtlasConsumerStatus defines the observed state of an AtlasConsumer.
type AtlasConsumerStatus struct {
	// observedGeneration is the metadata.generation of the AtlasConsumer that the
	// operator last acted on. When it is lower than metadata.generation, the status
	// does not reflect the latest spec yet.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the current state of the AtlasConsumer, one entry per
	// condition type: Ready, Progressing, Degraded, Reconciling, Stalled, ScalingActive,
	// ScalingLimited, ReconciliationPaused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// replicas is the number of consumer pods that currently exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of consumer pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// desiredReplicas is the number of pods the operator wants: spec.replicas, the
	// autoscaling decision, or 0 when suspended.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`

	// selector is the label selector of the consumer pods (for the scale subresource).
	// +optional
	Selector string `json:"selector,omitempty"`

	// groupID is the Kafka consumer group in use.
	// +optional
	GroupID string `json:"groupID,omitempty"`

	// lag is the consumer group's lag as last measured (autoscaling only).
	// +optional
	Lag *LagStatus `json:"lag,omitempty"`

	// lastScaleTime is when the operator last changed the replica count.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// recommendedReplicas is the replica count the latest lag measurement asks for
	// (autoscaling only); desiredReplicas stays higher while a scale-down waits for the
	// stabilization window. A new operator leader treats it as recommended when it takes
	// over, so the window runs from then at least.
	// +optional
	RecommendedReplicas *int32 `json:"recommendedReplicas,omitempty"`

	// scaleDownPeaks are the autoscaling recommendations of the scale-down stabilization
	// window that are higher than the latest one, each with the last time it was made
	// (autoscaling only). The replicas do not go below the highest of them before the
	// window has passed since it. Kept here, not only in the operator's memory, so that a
	// new operator leader honours the window too. Empty when nothing holds a scale-down;
	// one entry per replica count at most (they strictly decrease).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1001
	ScaleDownPeaks []ScaleRecommendation `json:"scaleDownPeaks,omitempty"`

	// drain is what the drain-time policy (spec.autoscaling.targetDrainTime) measured and
	// expects. A new operator leader starts from it.
	// +optional
	Drain *DrainStatus `json:"drain,omitempty"`
}

// DrainStatus is what the drain-time policy measured of a consumer's traffic and expects
// of its replicas.
type DrainStatus struct {
	// arrivalRate is the rate records arrive at on the topic, per second, smoothed over
	// polls.
	ArrivalRate int64 `json:"arrivalRate"`
	// podRate is how many records per second one pod consumes while it has work,
	// smoothed over the busy intervals measured (those in which every partition had more
	// records waiting than the pods consumed, with no pod starting or stopping). Absent
	// until one was measured.
	// +optional
	PodRate *int64 `json:"podRate,omitempty"`
	// busyIntervals is how many intervals podRate rests on. Below 2, the policy does not
	// scale down while records wait.
	// +optional
	BusyIntervals int32 `json:"busyIntervals,omitempty"`
	// expectedDrainTime is how long the current lag takes to drain at the recommended
	// replicas, arrivals going on. Absent without a pod rate, or when it never drains.
	// +optional
	ExpectedDrainTime *metav1.Duration `json:"expectedDrainTime,omitempty"`
}

// ScaleRecommendation is a replica count the autoscaling recommended, and when.
type ScaleRecommendation struct {
	// replicas is the recommended replica count.
	// +kubebuilder:validation:Minimum=0
	Replicas int32 `json:"replicas"`
	// time is the last time it was recommended.
	Time metav1.Time `json:"time"`
}

// AtlasConsumer runs one of the Atlas consumers (audit or indexer) of the Atlas domain
// events Kafka topic. The operator reconciles it into the workloads that run the consumer.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:scope=Namespaced,shortName=ac,categories=atlas
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="The consumer this AtlasConsumer runs"
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.kafka.topic`,description="The Kafka topic consumed"
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.status.groupID`,description="The Kafka consumer group"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`,description="Consumer pods wanted"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`,description="Ready consumer pods"
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag.total`,description="Records not yet consumed (autoscaling only)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AtlasConsumer struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec defines the desired state of the AtlasConsumer.
	// +required
	Spec AtlasConsumerSpec `json:"spec"`

	// status is the observed state of the AtlasConsumer, written by the operator.
	// Until the operator first writes it, the API server shows observedGeneration 0, so a
	// new AtlasConsumer reads as in progress, not as current, to kstatus (Flux, kpt) and to
	// the Argo CD health check: a GitOps sync waiting for health waits for the operator.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status AtlasConsumerStatus `json:"status,omitempty"`
}

// AtlasConsumerList contains a list of AtlasConsumer.
// +kubebuilder:object:root=true
type AtlasConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AtlasConsumer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AtlasConsumer{}, &AtlasConsumerList{})
}
