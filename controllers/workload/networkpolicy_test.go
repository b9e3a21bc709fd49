package workload

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// rule renders a NetworkPolicy rule as "peers | ports" for readable comparisons: "*" is
// any peer, an ipBlock is its CIDR, a selector is ns{...} or pod{...}.
func rule(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) string {
	var ps, qs []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			ps = append(ps, p.IPBlock.CIDR)
		case p.NamespaceSelector != nil:
			ps = append(ps, fmt.Sprintf("ns%v", p.NamespaceSelector.MatchLabels))
		case p.PodSelector != nil:
			ps = append(ps, fmt.Sprintf("pod%v", p.PodSelector.MatchLabels))
		}
	}
	if len(ps) == 0 {
		ps = []string{"*"}
	}
	for _, p := range ports {
		q := string(ptr.Deref(p.Protocol, "?")) + "/"
		if p.Port != nil {
			q += p.Port.String()
		}
		if p.EndPort != nil {
			q += fmt.Sprintf("-%d", *p.EndPort)
		}
		qs = append(qs, q)
	}
	return strings.Join(ps, ",") + " | " + strings.Join(qs, ",")
}

func egress(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Egress {
		out = append(out, rule(r.To, r.Ports))
	}
	return out
}

func ingress(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Ingress {
		out = append(out, rule(r.From, r.Ports))
	}
	return out
}

const dns = "* | UDP/53,TCP/53"

func TestNetworkPolicy(t *testing.T) {
	monitoring := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "monitoring"}}}
	data := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "data"}}}
	indexer := func(addresses ...string) func(*atlasv1alpha1.AtlasConsumer) {
		return func(a *atlasv1alpha1.AtlasConsumer) {
			a.Spec.Mode = atlasv1alpha1.AtlasConsumerModeIndexer
			a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: addresses}
		}
	}
	brokers := func(servers ...string) func(*atlasv1alpha1.AtlasConsumer) {
		return func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.Kafka.BootstrapServers = servers }
	}
	for _, tc := range []struct {
		name        string
		edits       []func(*atlasv1alpha1.AtlasConsumer)
		np          atlasv1alpha1.NetworkPolicySpec
		pg          []int32
		wantEgress  []string
		wantIngress string
	}{
		{
			name:       "audit: Kafka and Postgres only",
			pg:         []int32{5432},
			wantEgress: []string{dns, "* | TCP/5432,TCP/9092"},
		},
		{
			name: "audit ignores a stray elasticsearch",
			edits: []func(*atlasv1alpha1.AtlasConsumer){func(a *atlasv1alpha1.AtlasConsumer) {
				a.Spec.Elasticsearch = &atlasv1alpha1.ElasticsearchSpec{Addresses: []string{"https://es:9200"}}
			}},
			pg:         []int32{5432},
			wantEgress: []string{dns, "* | TCP/5432,TCP/9092"},
		},
		{
			name:       "indexer: search ports, defaults from the URL schemes",
			edits:      []func(*atlasv1alpha1.AtlasConsumer){indexer("https://es-0.search:9200", "https://es-1.search", "http://es-2.search/prefix", "https://[fd00::9]:9243")},
			pg:         []int32{6432},
			wantEgress: []string{dns, "* | TCP/80,TCP/443,TCP/6432,TCP/9092,TCP/9200,TCP/9243"},
		},
		{
			name:  "IP-literal brokers narrow their ports to their addresses",
			edits: []func(*atlasv1alpha1.AtlasConsumer){brokers("10.0.0.2:9092", "10.0.0.1:9092", "10.0.0.1:9093", "10.0.0.3:9095", "10.0.0.3:9094", "10.0.0.3:9095", "kafka.local:9096")},
			pg:    []int32{5432},
			wantEgress: []string{dns, "* | TCP/5432,TCP/9096",
				"10.0.0.1/32,10.0.0.2/32 | TCP/9092",
				"10.0.0.1/32 | TCP/9093",
				"10.0.0.3/32 | TCP/9094,TCP/9095"},
		},
		{
			name:       "IPv6 literals are /128, IPv4-mapped ones /32",
			edits:      []func(*atlasv1alpha1.AtlasConsumer){brokers("[fd00::2]:9092", "[fd00::1]:9092", "[::ffff:10.0.0.9]:9092")},
			pg:         []int32{5432},
			wantEgress: []string{dns, "* | TCP/5432", "10.0.0.9/32,fd00::1/128,fd00::2/128 | TCP/9092"},
		},
		{
			name:       "a port open to anyone needs no address rule",
			edits:      []func(*atlasv1alpha1.AtlasConsumer){brokers("10.0.0.1:9092", "kafka:9092", "10.0.0.1:9093")},
			np:         atlasv1alpha1.NetworkPolicySpec{ExtraEgressPorts: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(9000)), EndPort: ptr.To[int32](9100)}}},
			pg:         []int32{5432},
			wantEgress: []string{dns, "* | TCP/5432,TCP/9000-9100,TCP/9092"},
		},
		{
			name:  "egressTo given: every rule but DNS goes there, IP literals included",
			edits: []func(*atlasv1alpha1.AtlasConsumer){brokers("10.0.0.1:9092", "[fd00::1]:9093"), indexer("https://es")},
			np: atlasv1alpha1.NetworkPolicySpec{
				EgressTo:    []networkingv1.NetworkPolicyPeer{data, {IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}},
				MetricsFrom: []networkingv1.NetworkPolicyPeer{monitoring},
			},
			pg:          []int32{5432},
			wantEgress:  []string{dns, "nsmap[name:data],192.168.0.0/16 | TCP/443,TCP/5432,TCP/9092,TCP/9093"},
			wantIngress: "nsmap[name:monitoring] | TCP/8080",
		},
		{
			name:  "duplicate ports are listed once, in order",
			edits: []func(*atlasv1alpha1.AtlasConsumer){brokers("k-0:9092", "k-1:9092", "k-2:9200"), indexer("https://a:9200", "https://b:9200", "https://c")},
			np: atlasv1alpha1.NetworkPolicySpec{ExtraEgressPorts: []networkingv1.NetworkPolicyPort{
				{Port: ptr.To(intstr.FromString("kafka"))},
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(5432))},
				{Port: ptr.To(intstr.FromInt32(5432))},
				{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(443))},
			}},
			pg:         []int32{5432, 5433, 5432},
			wantEgress: []string{dns, "* | TCP/443,TCP/5432,TCP/5433,TCP/9092,TCP/9200,TCP/kafka,UDP/5432"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) {
				for _, edit := range tc.edits {
					edit(a)
				}
				a.Spec.NetworkPolicy = &tc.np
			})
			np := NetworkPolicy(ac, tc.pg)
			if got := egress(np); !slices.Equal(got, tc.wantEgress) {
				t.Errorf("egress:\n got %q\nwant %q", got, tc.wantEgress)
			}
			wantIngress := cmp.Or(tc.wantIngress, "* | TCP/8080")
			if got := ingress(np); !slices.Equal(got, []string{wantIngress}) {
				t.Errorf("ingress = %q, want %q", got, wantIngress)
			}
			// Map order must not leak into the output: an unstable one would apply on every reconcile.
			for range 10 {
				if again := NetworkPolicy(ac, tc.pg); !reflect.DeepEqual(again, np) {
					t.Fatalf("another build differs:\n%q\n%q", egress(again), egress(np))
				}
			}
		})
	}
}

// TestNetworkPolicyObject: named, labelled and selecting like the consumer's other
// objects, both directions restricted.
func TestNetworkPolicyObject(t *testing.T) {
	ac := consumer(func(a *atlasv1alpha1.AtlasConsumer) { a.Spec.NetworkPolicy = &atlasv1alpha1.NetworkPolicySpec{} })
	np := NetworkPolicy(ac, []int32{5432})
	if np.Name != "audit" || np.Namespace != "prod" || np.Kind != "NetworkPolicy" || np.APIVersion != "networking.k8s.io/v1" {
		t.Errorf("object = %s %s %s/%s", np.APIVersion, np.Kind, np.Namespace, np.Name)
	}
	if fmt.Sprint(np.Labels) != fmt.Sprint(Labels(ac)) || fmt.Sprint(np.Spec.PodSelector.MatchLabels) != fmt.Sprint(SelectorLabels(ac)) {
		t.Errorf("labels %v, pod selector %v", np.Labels, np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policy types = %v", np.Spec.PolicyTypes)
	}
	if WantsNetworkPolicy(consumer(nil)) || !WantsNetworkPolicy(ac) {
		t.Error("WantsNetworkPolicy does not follow spec.networkPolicy")
	}
}

func TestPostgresPorts(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want []int32
	}{
		{"", []int32{5432}},
		{"postgres://atlas:pw@db.data:5433/atlas?sslmode=require", []int32{5433}},
		{"postgresql://db/atlas", []int32{5432}},
		{"POSTGRES://db:7000/atlas", []int32{7000}},
		{"postgres://u:p@h1:5434,h2:5433,h3/atlas", []int32{5432, 5433, 5434}},
		{"postgres://u:p@ss@db:5444/atlas", []int32{5444}},
		{"postgres://u:p%40x@[fd00::1]:6543/atlas", []int32{6543}},
		{"postgres://u@[fd00::1]/atlas", []int32{5432}},
		{"postgres://u@db:5433/atlas?sslmode=disable&port=6000", []int32{6000}},
		{"postgres:///atlas?host=/var/run/postgresql", []int32{5432}},
		{"host=db port=5433 dbname=atlas", []int32{5433}},
		{"host=db dbname=atlas", []int32{5432}},
		{`host = db password='a b\' port=1' port = '6432'`, []int32{6432}},
		{"host=h1,h2 port=5434,5433", []int32{5433, 5434}},
		{"host=h1,h2 port=5433,", []int32{5432, 5433}},
		{"port=abc", []int32{5432}},
		{"port=70000", []int32{5432}},
	} {
		if got := PostgresPorts(tc.dsn); !slices.Equal(got, tc.want) {
			t.Errorf("PostgresPorts(%q) = %v, want %v", tc.dsn, got, tc.want)
		}
	}
}
