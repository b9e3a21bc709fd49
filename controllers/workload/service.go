package workload

import (
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// Service is the consumer's metrics Service: port "http-metrics" serves /metrics of
// every pod (a ServiceMonitor selects it by the consumer's labels). It is headless:
// scrapers address pods, not a virtual IP, and a cluster with thousands of consumers
// does not run out of service IPs.
func Service(ac *atlasv1alpha1.AtlasConsumer) *corev1.Service {
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ServiceName(ac),
			Namespace: ac.Namespace,
			Labels:    Labels(ac),
		},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Selector:  SelectorLabels(ac),
			Ports: []corev1.ServicePort{{
				Name:       MetricsPortName,
				Port:       MetricsPort,
				TargetPort: intstr.FromString(MetricsPortName),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}

// WantsPodDisruptionBudget says whether the consumer gets a PodDisruptionBudget: only
// with more than one replica (with one, a budget would block node drains).
func WantsPodDisruptionBudget(replicas int32) bool { return replicas > 1 }

// PodDisruptionBudget lets voluntary disruptions (node drains) take one consumer pod
// at a time, so a drain never stops the whole group.
func PodDisruptionBudget(ac *atlasv1alpha1.AtlasConsumer) *policyv1.PodDisruptionBudget {
	maxUnavailable := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      DeploymentName(ac),
			Namespace: ac.Namespace,
			Labels:    Labels(ac),
		},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(ac)},
		},
	}
}
