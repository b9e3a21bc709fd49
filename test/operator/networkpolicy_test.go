package operator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/controllers/workload"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// TestNetworkPolicyFollowsSpec: spec.networkPolicy becomes a NetworkPolicy controlled by
// the AtlasConsumer, with the Postgres port read from the DSN Secret (and following it),
// the Kafka ports (an IP-literal broker narrowed to its address) and the metrics port
// open to the given scrapers only; removing spec.networkPolicy removes it.
func TestNetworkPolicyFollowsSpec(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	dsn := dsnSecret(t, env, ns, "pg-np", "postgres://atlas:pw@pg.db:6432/atlas?sslmode=require")

	ac := auditConsumer(ns, "audit")
	ac.Spec.Kafka.BootstrapServers = []string{"kafka-0.kafka:9092", "10.1.2.3:9093"}
	ac.Spec.Postgres.DSNSecretRef = *secretKey("pg-np", "dsn")
	ac.Spec.NetworkPolicy = &atlasv1alpha1.NetworkPolicySpec{MetricsFrom: []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
	}}}
	mustCreate(t, env, ac)

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}}
	wantEgress := []string{"* UDP/53 TCP/53", "* TCP/6432 TCP/9092", "10.1.2.3/32 TCP/9093"}
	waitNetworkPolicy(t, env, np, wantEgress)
	assertControlledBy(t, np, ac)
	if !mapsEqual(np.Spec.PodSelector.MatchLabels, workload.SelectorLabels(ac)) || np.Labels[workload.LabelManagedBy] != workload.ManagedBy {
		t.Errorf("pod selector %v, labels %v", np.Spec.PodSelector.MatchLabels, np.Labels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policy types = %v", np.Spec.PolicyTypes)
	}
	if in := np.Spec.Ingress; len(in) != 1 || len(in[0].From) != 1 || in[0].From[0].NamespaceSelector == nil ||
		in[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || describePorts(in[0].Ports) != "TCP/8080" {
		t.Errorf("ingress = %+v, want TCP/8080 from the monitoring namespace only", in)
	}

	// A new DSN port reaches the policy through the Secret's update.
	dsn.Data["dsn"] = []byte("host=pg.db port=6543 dbname=atlas")
	if err := env.Client.Update(context.Background(), dsn); err != nil {
		t.Fatal(err)
	}
	waitNetworkPolicy(t, env, np, []string{"* UDP/53 TCP/53", "* TCP/6543 TCP/9092", "10.1.2.3/32 TCP/9093"})

	update(t, env, ac, func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.NetworkPolicy = nil })
	eventually(t, timeoutCreate, "NetworkPolicy removed", func() error {
		if err := get(t, env, np); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
}

// TestNetworkPolicyNameConflict: a NetworkPolicy of the consumer's name that the
// operator does not own is left alone: no conflict while spec.networkPolicy is unset,
// a NameConflict (and no write to it) once it is set.
func TestNetworkPolicyNameConflict(t *testing.T) {
	t.Parallel()
	env, ns := consumerNamespace(t)
	theirs := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit", Labels: map[string]string{"app": "theirs"}},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	mustCreate(t, env, theirs)
	ac := auditConsumer(ns, "audit")
	mustCreate(t, env, ac)
	waitDeployment(t, env, ns, "audit")
	eventually(t, timeoutCreate, "status without a conflict", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		if ac.Status.ObservedGeneration != ac.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", ac.Status.ObservedGeneration, ac.Generation)
		}
		return wantCondition(ac, atlasv1alpha1.ConditionStalled, metav1.ConditionFalse, "", "")
	})

	update(t, env, ac, func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.NetworkPolicy = &atlasv1alpha1.NetworkPolicySpec{} })
	eventually(t, timeoutCreate, "NameConflict reported", func() error {
		if err := get(t, env, ac); err != nil {
			return err
		}
		return wantCondition(ac, atlasv1alpha1.ConditionStalled, metav1.ConditionTrue, "NameConflict", `NetworkPolicy named "audit" already exists and is not owned`)
	})
	if err := get(t, env, theirs); err != nil {
		t.Fatal(err)
	}
	if len(theirs.OwnerReferences) != 0 || theirs.Labels["app"] != "theirs" || len(theirs.Spec.PolicyTypes) != 1 {
		t.Fatalf("the foreign NetworkPolicy was changed: %+v", theirs)
	}
	if w := shared.writes.inNamespace(ns); slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "/networkpolicies/") }) {
		t.Fatalf("the operator wrote to the foreign NetworkPolicy: %v", w)
	}
}

// waitNetworkPolicy waits until the NetworkPolicy exists with the egress rules want
// (each "peers ports...", "*" for any peer).
func waitNetworkPolicy(t testing.TB, env *kube.Env, np *networkingv1.NetworkPolicy, want []string) {
	t.Helper()
	eventually(t, timeoutCreate, "NetworkPolicy "+np.Name+" with egress "+strings.Join(want, "; "), func() error {
		if err := get(t, env, np); err != nil {
			return err
		}
		var got []string
		for _, r := range np.Spec.Egress {
			peers := "*"
			if len(r.To) > 0 {
				var cidrs []string
				for _, p := range r.To {
					if p.IPBlock == nil {
						return fmt.Errorf("egress peer %+v, want ipBlocks only", p)
					}
					cidrs = append(cidrs, p.IPBlock.CIDR)
				}
				peers = strings.Join(cidrs, ",")
			}
			got = append(got, peers+" "+strings.ReplaceAll(describePorts(r.Ports), ",", " "))
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("egress %q, want %q", got, want)
		}
		return nil
	})
}

func describePorts(ports []networkingv1.NetworkPolicyPort) string {
	var out []string
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%s/%s", ptr.Deref(p.Protocol, corev1.ProtocolTCP), p.Port))
	}
	return strings.Join(out, ",")
}
