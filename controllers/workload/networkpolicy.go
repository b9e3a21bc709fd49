package workload

import (
	"cmp"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
)

// Default ports of the consumer's peers, when their address names none.
const (
	DefaultPostgresPort = 5432
	dnsPort             = 53
	httpsPort           = 443
	httpPort            = 80
)

// WantsNetworkPolicy says whether the consumer gets a NetworkPolicy: only when its spec
// asks for one.
func WantsNetworkPolicy(ac *atlasv1alpha1.AtlasConsumer) bool { return ac.Spec.NetworkPolicy != nil }

// NetworkPolicy is the consumer's NetworkPolicy (spec.networkPolicy): the pods take
// scrapes on the metrics port only, and reach out only to DNS and to the ports their
// spec names (Kafka, Postgres, the search servers, the extra ports). postgresPorts are
// the ports of the Postgres DSN (PostgresPorts): the DSN lives in a Secret, which this
// package does not read. The output depends on nothing but its inputs and lists ports,
// peers and rules in a fixed order, so an unchanged spec applies nothing.
func NetworkPolicy(ac *atlasv1alpha1.AtlasConsumer, postgresPorts []int32) *networkingv1.NetworkPolicy {
	np := ac.Spec.NetworkPolicy
	if np == nil {
		np = &atlasv1alpha1.NetworkPolicySpec{}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      NetworkPolicyName(ac),
			Namespace: ac.Namespace,
			Labels:    Labels(ac),
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(ac)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  np.MetricsFrom,
				Ports: []networkingv1.NetworkPolicyPort{tcpPort(MetricsPort)},
			}},
			Egress: egressRules(ac, np, postgresPorts),
		},
	}
}

// egressRules: DNS first, to anywhere (the cluster DNS's address is not in the spec);
// then every other port, to egressTo or anywhere; then, without egressTo, the Kafka
// ports only IP addresses were given for, each to those addresses.
func egressRules(ac *atlasv1alpha1.AtlasConsumer, np *atlasv1alpha1.NetworkPolicySpec, postgresPorts []int32) []networkingv1.NetworkPolicyEgressRule {
	var open []networkingv1.NetworkPolicyPort
	literal := map[int32][]netip.Addr{}
	for _, server := range ac.Spec.Kafka.BootstrapServers {
		host, port, ok := splitHostPort(server)
		if !ok {
			continue // the CRD pattern keeps these out; the consumer could not connect either
		}
		if addr, err := netip.ParseAddr(host); err == nil && len(np.EgressTo) == 0 {
			literal[port] = append(literal[port], addr.Unmap())
			continue
		}
		open = append(open, tcpPort(port))
	}
	for _, port := range postgresPorts {
		if validPort(int64(port)) {
			open = append(open, tcpPort(port))
		}
	}
	if ac.Spec.Mode == atlasv1alpha1.AtlasConsumerModeIndexer && ac.Spec.Elasticsearch != nil {
		for _, addr := range ac.Spec.Elasticsearch.Addresses {
			if port, ok := urlPort(addr); ok {
				open = append(open, tcpPort(port))
			}
		}
	}
	for _, p := range np.ExtraEgressPorts {
		open = append(open, normalizePort(p))
	}
	open = sortedPorts(open)

	rules := []networkingv1.NetworkPolicyEgressRule{{
		Ports: []networkingv1.NetworkPolicyPort{udpPort(dnsPort), tcpPort(dnsPort)},
	}}
	if len(open) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: np.EgressTo, Ports: open})
	}
	return append(rules, literalRules(literal, open)...)
}

// literalRules turns the Kafka ports given only with IP addresses into one rule per set
// of addresses, leaving out the ports already open to any destination. Ports sharing the
// same addresses share a rule, so no port is allowed to an address it was not given for.
func literalRules(literal map[int32][]netip.Addr, open []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyEgressRule {
	var rules []networkingv1.NetworkPolicyEgressRule
	ruleOf := map[string]int{}
	for _, port := range slices.Sorted(maps.Keys(literal)) {
		if slices.ContainsFunc(open, func(p networkingv1.NetworkPolicyPort) bool { return covers(p, port) }) {
			continue
		}
		addrs := literal[port]
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		addrs = slices.Compact(addrs)
		peers := make([]networkingv1.NetworkPolicyPeer, 0, len(addrs))
		keys := make([]string, 0, len(addrs))
		for _, a := range addrs {
			cidr := netip.PrefixFrom(a, a.BitLen()).String()
			peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
			keys = append(keys, cidr)
		}
		key := strings.Join(keys, ",")
		if i, ok := ruleOf[key]; ok {
			rules[i].Ports = append(rules[i].Ports, tcpPort(port))
			continue
		}
		ruleOf[key] = len(rules)
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: []networkingv1.NetworkPolicyPort{tcpPort(port)}})
	}
	return rules
}

// covers says whether an open port (TCP, numeric, maybe a range) already allows port.
func covers(p networkingv1.NetworkPolicyPort, port int32) bool {
	if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil || p.Port.Type != intstr.Int {
		return false
	}
	if p.EndPort == nil {
		return p.Port.IntVal == port
	}
	return p.Port.IntVal <= port && port <= *p.EndPort
}

// splitHostPort splits a bootstrap server "host:port" or "[v6]:port".
func splitHostPort(server string) (string, int32, bool) {
	host, p, err := net.SplitHostPort(server)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.ParseInt(p, 10, 32)
	if err != nil || !validPort(port) {
		return "", 0, false
	}
	return host, int32(port), true
}

// urlPort is the port of a search server URL: its own, or the scheme's.
func urlPort(addr string) (int32, bool) {
	u, err := url.Parse(addr)
	if err != nil {
		return 0, false
	}
	if p := u.Port(); p != "" {
		port, err := strconv.ParseInt(p, 10, 32)
		return int32(port), err == nil && validPort(port)
	}
	switch u.Scheme {
	case "https":
		return httpsPort, true
	case "http":
		return httpPort, true
	}
	return 0, false
}

func validPort(p int64) bool { return p >= 1 && p <= 65535 }

func tcpPort(n int32) networkingv1.NetworkPolicyPort {
	return portOf(corev1.ProtocolTCP, n)
}

func udpPort(n int32) networkingv1.NetworkPolicyPort {
	return portOf(corev1.ProtocolUDP, n)
}

func portOf(proto corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	port := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port}
}

// normalizePort spells out the protocol the API server defaults (TCP), so a user's port
// and the operator's own compare, and deduplicate, as the same.
func normalizePort(p networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyPort {
	proto := corev1.ProtocolTCP
	if p.Protocol != nil && *p.Protocol != "" {
		proto = *p.Protocol
	}
	out := networkingv1.NetworkPolicyPort{Protocol: &proto}
	if p.Port != nil {
		port := *p.Port
		out.Port = &port
	}
	if p.EndPort != nil {
		end := *p.EndPort
		out.EndPort = &end
	}
	return out
}

// sortedPorts sorts by protocol, then numeric ports before named ones, then range end,
// and drops duplicates.
func sortedPorts(ports []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	compare := func(a, b networkingv1.NetworkPolicyPort) int {
		return cmp.Or(
			cmp.Compare(*a.Protocol, *b.Protocol),
			cmp.Compare(portType(a), portType(b)),
			cmp.Compare(portInt(a), portInt(b)),
			cmp.Compare(portName(a), portName(b)),
			cmp.Compare(endPort(a), endPort(b)),
		)
	}
	slices.SortFunc(ports, compare)
	return slices.CompactFunc(ports, func(a, b networkingv1.NetworkPolicyPort) bool { return compare(a, b) == 0 })
}

// portType orders a port-less entry (every port) first, then numbers, then names.
func portType(p networkingv1.NetworkPolicyPort) int {
	switch {
	case p.Port == nil:
		return 0
	case p.Port.Type == intstr.Int:
		return 1
	default:
		return 2
	}
}

func portInt(p networkingv1.NetworkPolicyPort) int32 {
	if p.Port == nil {
		return 0
	}
	return p.Port.IntVal
}

func portName(p networkingv1.NetworkPolicyPort) string {
	if p.Port == nil {
		return ""
	}
	return p.Port.StrVal
}

func endPort(p networkingv1.NetworkPolicyPort) int32 {
	if p.EndPort == nil {
		return 0
	}
	return *p.EndPort
}

// PostgresPorts are the ports a Postgres connection string connects to, in the URL form
// ("postgres://user:pw@host:5433,other:5434/db?sslmode=require", where a "port" query
// parameter wins) or the keyword/value form ("host=db port=5433"), as libpq and pgx read
// them: a host without a port, an empty port, or a DSN naming none means 5432. A DSN it
// cannot read gives 5432 too, rather than no Postgres port at all.
func PostgresPorts(dsn string) []int32 {
	dsn = strings.TrimSpace(dsn)
	var raw []string
	if rest, ok := cutPostgresScheme(dsn); ok {
		raw = urlDSNPorts(rest)
	} else {
		raw = keywordDSNPorts(dsn)
	}
	var ports []int32
	for _, p := range raw {
		p = strings.TrimSpace(p)
		if p == "" {
			ports = append(ports, DefaultPostgresPort)
			continue
		}
		if n, err := strconv.ParseInt(p, 10, 32); err == nil && validPort(n) {
			ports = append(ports, int32(n))
		}
	}
	if len(ports) == 0 {
		return []int32{DefaultPostgresPort}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func cutPostgresScheme(dsn string) (string, bool) {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if len(dsn) >= len(scheme) && strings.EqualFold(dsn[:len(scheme)], scheme) {
			return dsn[len(scheme):], true
		}
	}
	return "", false
}

// urlDSNPorts reads the hosts by hand: net/url does not take libpq's comma-separated
// host lists.
func urlDSNPorts(rest string) []string {
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if _, query, ok := strings.Cut(tail, "?"); ok {
		query, _, _ = strings.Cut(query, "#")
		if q, err := url.ParseQuery(query); err == nil && q.Get("port") != "" {
			return strings.Split(q.Get("port"), ",")
		}
	}
	var ports []string
	for _, host := range strings.Split(authority, ",") {
		ports = append(ports, hostPort(host))
	}
	return ports
}

// hostPort is the port of "host", "host:port", "[v6]" or "[v6]:port" ("" when none).
func hostPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			return strings.TrimPrefix(host[i+1:], ":")
		}
		return ""
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		return host[i+1:]
	}
	return ""
}

// keywordDSNPorts reads the last "port" of a keyword/value DSN; values may be
// single-quoted, with backslash escapes.
func keywordDSNPorts(dsn string) []string {
	port := ""
	s := dsn
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\f\v")
		var val strings.Builder
		quoted := strings.HasPrefix(s, "'")
		if quoted {
			s = s[1:]
		}
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				val.WriteByte(s[i])
				continue
			}
			if (quoted && c == '\'') || (!quoted && strings.IndexByte(" \t\n\r\f\v", c) >= 0) {
				break
			}
			val.WriteByte(c)
		}
		if i < len(s) {
			i++ // the closing quote or the separating space
		}
		s = s[i:]
		if key == "port" {
			port = val.String()
		}
	}
	return strings.Split(port, ",")
}
