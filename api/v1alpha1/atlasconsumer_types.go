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

// DefaultTopic is the Kafka topic Atlas services publish their domain events to, and the
// default of spec.kafka.topic.
const DefaultTopic = "atlas.domain-events.v1"

// KafkaSpec says where a consumer reads its events from.
type KafkaSpec struct {
	// bootstrapServers lists the Kafka brokers the consumer first connects to, each as
	// host:port (for example "kafka-0.kafka.atlas.svc:9092"). The consumer discovers the
	// rest of the cluster from them. At least one is required.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
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
	// empty, the operator chooses the group ID.
	// +optional
	GroupID string `json:"groupID,omitempty"`
}

// AtlasConsumerSpec defines the desired state of an AtlasConsumer.
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

	// replicas is the number of consumer pods to run. Replicas beyond the topic's
	// partition count sit idle. 0 stops the consumer without deleting it. When unset,
	// the operator runs one replica.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
}

// AtlasConsumerStatus defines the observed state of an AtlasConsumer.
type AtlasConsumerStatus struct {
	// observedGeneration is the metadata.generation of the AtlasConsumer that the
	// operator last acted on. When it is lower than metadata.generation, the status
	// does not reflect the latest spec yet.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the current state of the AtlasConsumer, one entry per
	// condition type.
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
}

// AtlasConsumer runs one of the Atlas consumers (audit or indexer) of the Atlas domain
// events Kafka topic. The operator reconciles it into the workloads that run the consumer.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ac
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,description="The consumer this AtlasConsumer runs"
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.kafka.topic`,description="The Kafka topic consumed"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`,description="Ready consumer pods"
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
	// +optional
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
