#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, without Docker or an image registry:
# etcd + kube-apiserver (hack/envtest-binaries.sh), kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy and CoreDNS (hack/node-binaries.sh), containerd + runc from Debian, a
# bridge CNI network.
#   eval "$(hack/node.sh start DIR)"   start it (state, certificates and logs in DIR), wait
#                                       for the node to be Ready, print export lines:
#                                       KUBECONFIG (admin), CONTAINERD_ADDRESS/NAMESPACE (for
#                                       ctr), CRI_CONFIG_FILE (for crictl), ATLAS_NODE_HOST_IP
#                                       (the host, as pods reach it), ATLAS_NODE_PAUSE_IMAGE
#                                       (hack/pause's image, a probe for tests)
#   hack/node.sh load DIR IMAGE.tar    import an image tarball (`make image`) for the pods
#                                       (imagePullPolicy: Never or IfNotPresent)
#   hack/node.sh stop DIR              stop everything (pods, shims, mounts, the bridge,
#                                       kube-proxy's iptables rules); fails when some remain
# Needs root; one node per machine. Starting a DIR whose node runs prints its exports; a
# stopped DIR starts again with its state (etcd data, images) on the same ports. Bring-up
# takes ~6 s once the binaries are cached; hack/NODE.md tells more.
#
# Pods live on the bridge $NODE_BRIDGE (default atlas0) in $NODE_POD_CIDR (default
# 10.244.0.0/16); the bridge's address (default 10.244.0.1) is the host as pods see it: a
# server that pods must reach listens there (or on 0.0.0.0), not on 127.0.0.1. The kubelet,
# the kube-apiserver and the node's InternalIP (a pod's status.hostIP) use that address too.
# kube-proxy (iptables mode) routes Service ClusterIPs, `kubernetes.default.svc` included;
# CoreDNS serves cluster.local behind the kube-dns Service ($NODE_SERVICE_CIDR's .10).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

NODE_NAME="${NODE_NAME:-atlas-node}"
NODE_BRIDGE="${NODE_BRIDGE:-atlas0}"
NODE_POD_CIDR="${NODE_POD_CIDR:-10.244.0.0/16}"
NODE_SERVICE_CIDR="${NODE_SERVICE_CIDR:-10.96.0.0/16}"
# one node per machine: it owns the bridge and the kubelet's cgroups (/kubepods)
MARKER=/run/atlas-node.dir

# net_ip A.B.C.D/LEN N: the N-th host address of the IPv4 network.
net_ip() {
  local a b c d len=${1#*/} n
  IFS=. read -r a b c d <<<"${1%/*}"
  n=$(((a << 24 | b << 16 | c << 8 | d) & (0xffffffff << (32 - len)) & 0xffffffff))
  n=$((n + $2))
  echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"
}
prefix_len=${NODE_POD_CIDR#*/}
host_ip=$(net_ip "$NODE_POD_CIDR" 1)
service_ip=$(net_ip "$NODE_SERVICE_CIDR" 1)
dns_ip=$(net_ip "$NODE_SERVICE_CIDR" 10)
COREDNS_VERSION="${NODE_COREDNS_VERSION:-1.15.0}"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)

need_root() {
  [[ $(id -u) == 0 ]] || die "hack/node.sh runs containerd and the kubelet: run it as root"
}

# The node's packages from Debian, when absent.
ensure_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || missing+=(containernetworking-plugins)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v findmnt >/dev/null || missing+=(util-linux)
  command -v iptables-restore >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager"
  log "node: installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian enables containerd.service; this node runs its own containerd.
  systemctl disable --now containerd >/dev/null 2>&1 || true
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() {
  local dir=$1 c
  for c in "${components[@]}"; do alive "$dir/$c.pid" || return 1; done
}

exports() {
  local dir=$1
  echo "export KUBECONFIG='$dir/kubeconfig'"
  echo "export CONTAINERD_ADDRESS='$dir/containerd/containerd.sock'"
  echo "export CONTAINERD_NAMESPACE=k8s.io"
  echo "export CRI_CONFIG_FILE='$dir/crictl.yaml'"
  echo "export ATLAS_NODE_HOST_IP=$host_ip"
  echo "export ATLAS_NODE_PAUSE_IMAGE=$(cat "$dir/pause-image" 2>/dev/null)"
}

# launch DIR NAME CMD...: runs CMD in the background (own session), logs to DIR/NAME.log,
# records its PID in DIR/NAME.pid.
launch() {
  local dir=$1 name=$2; shift 2
  setsid "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

# wait_for SECONDS WHAT PIDFILE LOG CMD...: until CMD succeeds; fails early when the process died.
wait_for() {
  local secs=$1 what=$2 pidfile=$3 logfile=$4 i; shift 4
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    alive "$pidfile" || { tail -n 30 "$logfile" >&2; die "node: $what exited"; }
    sleep 0.2
  done
  tail -n 30 "$logfile" >&2
  die "node: $what not ready after ${secs}s"
}

certificates() {
  local dir=$1 pki=$1/pki
  mkdir -p "$pki"
  chmod 0700 "$pki"
  pki_ca "$pki" atlas-node-ca
  pki_cert "$pki" apiserver kube-apiserver "" serverAuth \
    "IP:127.0.0.1,IP:$host_ip,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  pki_cert "$pki" apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
  pki_cert "$pki" admin atlas-admin system:masters clientAuth
  pki_cert "$pki" controller-manager system:kube-controller-manager "" clientAuth
  pki_cert "$pki" scheduler system:kube-scheduler "" clientAuth
  pki_cert "$pki" kubelet-client "system:node:$NODE_NAME" system:nodes clientAuth
  pki_cert "$pki" kubelet "$NODE_NAME" "" serverAuth "IP:$host_ip,IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost"
  pki_cert "$pki" kube-proxy system:kube-proxy "" clientAuth
  pki_cert "$pki" coredns system:coredns "" clientAuth
  if [[ ! -f $pki/sa.key ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
}

# kubeconfig FILE CERTNAME PORT
kubeconfig() {
  local file=$1 name=$2 port=$3 pki
  pki=$(dirname "$file")/pki
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: atlas-node
  cluster:
    server: https://$host_ip:$port
    certificate-authority: $pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: atlas-node
  context: {cluster: atlas-node, user: $name}
current-context: atlas-node
KUBECONFIG
  chmod 0600 "$file"
}

# The pods' bridge, made before the kubelet starts: its address is the node's IP.
bridge_up() {
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip -4 addr show dev "$NODE_BRIDGE" | grep -q "inet $host_ip/$prefix_len" ||
    ip addr add "$host_ip/$prefix_len" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
}

# cluster_dns DIR KUBECTL: what CoreDNS (a node process on the bridge address) needs from
# the API: read access to Services, EndpointSlices, Pods and Namespaces as system:coredns,
# and the kube-dns Service at $dns_ip whose one endpoint is CoreDNS on the host, so pods
# resolve through a ClusterIP as on any cluster.
cluster_dns() {
  local dir=$1 kubectl=$2
  $kubectl apply --server-side --force-conflicts -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $dns_ip
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: atlas-node}
addressType: IPv4
endpoints:
- addresses: ["$host_ip"]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
YAML
}

start() {
  local dir=$1
  need_root
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # unix socket paths are limited to 107 bytes; containerd's are the longest
  ((${#dir} <= 60)) || die "node: DIR '$dir' is too long for containerd's sockets (60 characters at most)"
  if running "$dir"; then
    log "node: already running in $dir"
    exports "$dir"
    return 0
  fi
  if [[ -f $MARKER && $(cat "$MARKER") != "$dir" ]]; then
    local other c
    other=$(cat "$MARKER")
    for c in "${components[@]}"; do
      if alive "$other/$c.pid"; then
        die "node: a node runs in $other (one per machine: it owns the bridge and /kubepods); stop it first: hack/node.sh stop $other"
      fi
    done
  fi
  stop "$dir" 2>/dev/null # whatever a crashed or half-started node left
  echo "$dir" >"$MARKER"
  ensure_packages
  local t0=$SECONDS assets nodebin
  assets=$("$here/envtest-binaries.sh")
  nodebin=$("$here/node-binaries.sh")
  # the sandbox image's binary, cached (and its image tagged) by the hash of its source
  local pause pause_hash
  pause_hash=$(sha256sum "$here/pause/main.go" | cut -c1-16)
  pause="$ATLAS_CACHE_DIR/node/pause-$pause_hash"
  PAUSE_IMAGE="atlas.local/pause:$pause_hash"
  echo "$PAUSE_IMAGE" >"$dir/pause-image"
  if [[ ! -x $pause ]]; then
    (cd "$here/.." && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pause.tmp" ./hack/pause) ||
      die "node: building hack/pause failed"
    mv "$pause.tmp" "$pause"
  fi

  if [[ ! -f $dir/ports.env ]]; then
    # seven free 127.0.0.1 ports at once (held open together, so all different)
    python3 - >"$dir/ports.env" <<'PY'
import socket
names = ["etcd_port", "etcd_peer_port", "apiserver_port", "cm_port", "scheduler_port", "kubelet_port", "kubelet_healthz_port"]
socks = []
for n in names:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    print(f"{n}={s.getsockname()[1]}")
PY
  fi
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  if [[ -z ${proxy_healthz_port:-} ]]; then # a DIR made before kube-proxy was part of the node
    python3 - >>"$dir/ports.env" <<'PY'
import socket
socks = []
for n in ["proxy_healthz_port", "proxy_metrics_port"]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    print(f"{n}={s.getsockname()[1]}")
PY
    # shellcheck disable=SC1091
    source "$dir/ports.env"
  fi
  certificates "$dir"
  local pki=$dir/pki
  kubeconfig "$dir/kubeconfig" admin "$apiserver_port"
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager "$apiserver_port"
  kubeconfig "$dir/scheduler.kubeconfig" scheduler "$apiserver_port"
  kubeconfig "$dir/kubelet.kubeconfig" kubelet-client "$apiserver_port"
  kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy "$apiserver_port"
  kubeconfig "$dir/coredns.kubeconfig" coredns "$apiserver_port"
  local kubectl="$assets/kubectl --kubeconfig $dir/kubeconfig"

  # The bridge first: its address is the node's, where the apiserver and CoreDNS listen.
  bridge_up
  # Service traffic between pods is routed by the host (DNAT to a pod on the same bridge).
  [[ -f $dir/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$dir/ip_forward.orig"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  log "node: etcd, kube-apiserver ($host_ip:$apiserver_port) and containerd"
  launch "$dir" etcd "$assets/etcd" --name atlas-node --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "atlas-node=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_for 30 etcd "$dir/etcd.pid" "$dir/etcd.log" wait_port 127.0.0.1 "$etcd_port" 1
  launch "$dir" kube-apiserver "$assets/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$host_ip" --secure-port "$apiserver_port" --advertise-address "$host_ip" \
    --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$NODE_SERVICE_CIDR" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false
  # containerd boots while the apiserver does
  local ctrd=$dir/containerd
  mkdir -p "$ctrd" "$dir/cni/net.d" "$dir/cni/ipam"
  cat >"$ctrd/config.toml" <<TOML
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$ctrd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # no CAP_SYS_RESOURCE in these VMs: never lower a process's oom_score_adj
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$ctrd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  cat >"$dir/cni/net.d/10-atlas.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "atlas",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$host_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$dir/cni/ipam"
      }
    }
  ]
}
JSON
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' \
    "$ctrd/containerd.sock" "$ctrd/containerd.sock" >"$dir/crictl.yaml"
  launch "$dir" containerd containerd --config "$ctrd/config.toml"
  wait_for 30 containerd "$dir/containerd.pid" "$dir/containerd.log" ctr --address "$ctrd/containerd.sock" version
  if ! ctr --address "$ctrd/containerd.sock" -n k8s.io images ls -q | grep -qx "$PAUSE_IMAGE"; then
    "$pause" --image "$dir/pause-image.tar" --tag "$PAUSE_IMAGE"
    ctr --address "$ctrd/containerd.sock" -n k8s.io images import "$dir/pause-image.tar" >/dev/null
    rm -f "$dir/pause-image.tar"
  fi

  wait_for 60 kube-apiserver "$dir/kube-apiserver.pid" "$dir/kube-apiserver.log" $kubectl get --raw /readyz

  cluster_dns "$dir" "$kubectl"

  log "node: kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS"
  mkdir -p "$dir/controller-manager" "$dir/scheduler"
  launch "$dir" kube-controller-manager "$nodebin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$cm_port" --cert-dir "$dir/controller-manager" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$NODE_SERVICE_CIDR" --profiling=false \
    --kube-api-qps 200 --kube-api-burst 400 --node-monitor-period 2s
  launch "$dir" kube-scheduler "$nodebin/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" --cert-dir "$dir/scheduler" \
    --leader-elect=false --profiling=false
  cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $NODE_POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
nodePortAddresses: [$host_ip/32]
# leave the host's conntrack sysctls and route_localnet alone
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
YAML
  launch "$dir" kube-proxy "$nodebin/kube-proxy" --config "$dir/kube-proxy.yaml"
  cat >"$dir/Corefile" <<COREFILE
.:53 {
    bind $host_ip
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $dir/coredns.kubeconfig atlas-node
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
COREFILE
  launch "$dir" coredns "$nodebin/coredns-$COREDNS_VERSION" -conf "$dir/Corefile"
  wait_for 30 CoreDNS "$dir/coredns.pid" "$dir/coredns.log" wait_port "$host_ip" 53 1

  log "node: kubelet ($NODE_NAME, $host_ip on bridge $NODE_BRIDGE)"
  mkdir -p "$dir/kubelet" "$dir/pods-logs"
  cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# this host has cgroup v1, which Kubernetes 1.35+ refuses unless told
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$ctrd/containerd.sock
address: $host_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: /etc/resolv.conf
podLogsDir: $dir/pods-logs
failSwapOn: false
# keep imported images (there is no registry to pull them again) and never evict for disk
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
serializeImagePulls: false
YAML
  local kubelet_started
  kubelet_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  launch "$dir" kubelet "$nodebin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$host_ip"

  node_ready() {
    # Ready, as posted by this kubelet (a restarted node's object still says Ready for ~40s)
    local ready
    ready=$($kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}') &&
      [[ ${ready% *} == True && ! ${ready#* } < $kubelet_started ]] &&
      # pods need the default ServiceAccount (the controller-manager makes it) and an untainted node
      $kubectl -n default get serviceaccount default &&
      [[ -z $($kubectl get node "$NODE_NAME" -o jsonpath='{.spec.taints}') ]]
  }
  wait_for 120 "the node" "$dir/kubelet.pid" "$dir/kubelet.log" node_ready
  local c
  for c in "${components[@]}"; do alive "$dir/$c.pid" || { tail -n 30 "$dir/$c.log" >&2; die "node: $c exited"; }; done
  log "node: $NODE_NAME Ready after $((SECONDS - t0))s (kubeconfig $dir/kubeconfig, logs in $dir)"
  exports "$dir"
}

load() {
  local dir=$1 tar=$2
  dir=$(cd "$dir" && pwd)
  alive "$dir/containerd.pid" || die "node: containerd of $dir is not running"
  ctr --address "$dir/containerd/containerd.sock" -n k8s.io images import "$tar" >&2
}

stop() {
  local dir=$1
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd)
  local ctrd=$dir/containerd
  if [[ -f $dir/kubelet.pid ]]; then stop_pid "$(cat "$dir/kubelet.pid")" kubelet; rm -f "$dir/kubelet.pid"; fi
  local crictl_bin=$ATLAS_CACHE_DIR/node/v${NODE_K8S_VERSION:-1.37.2}/crictl
  if alive "$dir/containerd.pid" && [[ -x $crictl_bin && -f $dir/crictl.yaml ]]; then
    # through the CRI: stops the containers, tears their network down, unmounts /dev/shm,
    # and every shim exits with its last task
    local crictl="$crictl_bin --config $dir/crictl.yaml"
    if [[ -n $($crictl pods -q 2>/dev/null) ]]; then
      $crictl stopp $($crictl pods -q) >/dev/null 2>&1 || true
      $crictl rmp -a -f >/dev/null 2>&1 || true
    fi
  fi
  # the rest together (each takes a second or two to shut down gracefully), etcd last
  local c
  for c in coredns kube-proxy containerd kube-scheduler kube-controller-manager kube-apiserver; do
    if [[ -f $dir/$c.pid ]]; then kill -TERM "$(cat "$dir/$c.pid")" 2>/dev/null || true; fi
  done
  for c in coredns kube-proxy containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if [[ -f $dir/$c.pid ]]; then stop_pid "$(cat "$dir/$c.pid")" "$c"; rm -f "$dir/$c.pid"; fi
  done
  # Containers and shims that outlived containerd (it crashed, or the CRI teardown failed),
  # found by PID: a container's init PID is in its bundle (checked to be in the container's
  # cgroup), a shim is whoever listens on the socket in the bundle's `address` file (checked
  # to serve this containerd).
  local bundle init sock shim
  for bundle in "$ctrd"/state/io.containerd.runtime.v2.task/*/*/; do
    [[ -d $bundle ]] || continue
    bundle=${bundle%/}
    init=$(cat "$bundle/init.pid" 2>/dev/null || true)
    if [[ -n $init ]] && grep -qF "$(basename "$bundle")" "/proc/$init/cgroup" 2>/dev/null; then
      kill -KILL "$init" 2>/dev/null || true
      log "node: killed leftover container process $init"
    fi
    sock=$(sed 's|^unix://||' "$bundle/address" 2>/dev/null || true)
    [[ -n $sock ]] || continue
    for shim in $(ss -xlpn 2>/dev/null | grep -F " $sock " | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
      if tr '\0' ' ' <"/proc/$shim/cmdline" 2>/dev/null | grep -qF -- "-address $ctrd/containerd.sock"; then
        stop_pid "$shim" "containerd-shim"
      fi
    done
  done
  # Mounts under DIR (pod volumes, the kubelet's root, overlay root filesystems, shm, netns), deepest first.
  local m
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "node: could not unmount $m"
  done < <(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r)
  # The bridge, the kubelet's cgroups (empty now) and its log symlinks into DIR.
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link del "$NODE_BRIDGE"; fi
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  # kube-proxy's rules (iptables, and nftables should a later mode use it), then what else
  # the node's components made (the kubelet's KUBE-KUBELET-CANARY, KUBE-FIREWALL,
  # KUBE-IPTABLES-HINT): every table rewritten without its KUBE- chains and the rules that
  # jump to them. Then forwarding as it was before the node.
  local proxy_bin=$ATLAS_CACHE_DIR/node/v${NODE_K8S_VERSION:-1.37.2}/kube-proxy family
  if command -v iptables-save >/dev/null && [[ $( (iptables-save; ip6tables-save) 2>/dev/null) == *KUBE-* ]]; then
    if [[ -x $proxy_bin ]]; then "$proxy_bin" --cleanup >>"$dir/kube-proxy.log" 2>&1 || true; fi
    for family in iptables ip6tables; do # the kubelet makes its chains for IPv6 too
      "$family-save" 2>/dev/null | grep -v -- 'KUBE-' | "$family-restore" || log "node: could not remove the KUBE- $family rules"
    done
  fi
  if [[ -f $dir/ip_forward.orig ]]; then
    cat "$dir/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
    rm -f "$dir/ip_forward.orig"
  fi
  if [[ -f $MARKER && $(cat "$MARKER") == "$dir" ]]; then rm -f "$MARKER"; fi
  local left
  left=$( (iptables-save 2>/dev/null || true; ip6tables-save 2>/dev/null || true
    if command -v nft >/dev/null; then nft list ruleset 2>/dev/null || true; fi) | grep -c 'KUBE-' || true)
  if ((left > 0)); then
    log "node: $left KUBE- iptables rules remain after stop (see iptables-save, ip6tables-save)"
    return 1
  fi
  return 0
}

case "${1:-}" in
  start) start "${2:?usage: node.sh start DIR}" ;;
  load) load "${2:?usage: node.sh load DIR IMAGE.tar}" "${3:?usage: node.sh load DIR IMAGE.tar}" ;;
  stop) stop "${2:?usage: node.sh stop DIR}" ;;
  *) die "usage: hack/node.sh start|load|stop DIR" ;;
esac
