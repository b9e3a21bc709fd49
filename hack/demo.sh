#!/usr/bin/env bash
# `make demo`: the whole Atlas consumer system on this machine, shown working.
#   hack/demo.sh        start a real single-node Kubernetes (hack/node.sh) with the project's
#                       image on it, PostgreSQL (migrated), an embedded Kafka broker with the
#                       events topic (6 partitions) and Elasticsearch 8; install the operator from
#                       dist/install.yaml (a pod, as users run it); apply
#                       config/samples (audit, and indexer with autoscaling), whose pods run on
#                       the node; run Prometheus on this machine with the shipped scrape jobs
#                       and alerts; publish bursts of generated events and show live what
#                       happens; on Ctrl-C print a summary whose counts must agree, then stop
#                       everything
#   hack/demo.sh down   stop what a demo left running (`make demo-down`)
# DEMO_ONCE=1: one burst, then the summary once the indexer is back at one pod.
# Needs root (containerd and the kubelet). State and logs: $ATLAS_DEMO_DIR (/tmp/atlas-demo).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

# Under /tmp, not the cache: the postgres OS user (when run as root) must reach its data;
# and short, for containerd's socket paths.
state="${ATLAS_DEMO_DIR:-/tmp/atlas-demo}"
namespace=atlas-demo

# stop_all stops every part, whichever of them fails to stop.
stop_all() {
  [[ -d $state ]] || return 0
  local f
  for f in "$state"/kafka.pid "$state"/prometheus.pid; do
    if [[ -f $f ]]; then stop_pid "$(cat "$f")" "$(basename "$f" .pid)" || true; rm -f "$f"; fi
  done
  hack/node.sh stop "$state/node" || log "the node did not stop cleanly: hack/node.sh stop $state/node"
  hack/elasticsearch.sh stop "$state/elasticsearch" || true
  hack/postgres.sh stop "$state/postgres" || true
  return 0
}

if [[ ${1:-} == down ]]; then
  # The live view takes SIGTERM as a Ctrl-C: it stops the burst, lets the consumers finish
  # (2 minutes at most), prints its summary and exits; the demo then stops its own stack.
  # Whatever is left after that is swept.
  view=$(pgrep -f "^$state/demoview " || true)
  if [[ -n $view ]]; then stop_pid "$view" "live view" 180; fi
  if [[ -f $state/demo.pid ]]; then
    demo=$(cat "$state/demo.pid")
    for _ in $(seq 1 60); do kill -0 "$demo" 2>/dev/null || break; sleep 1; done
    if kill -0 "$demo" 2>/dev/null; then stop_pid "$demo" demo; fi
  fi
  stop_all
  exit 0
fi

[[ $(id -u) == 0 ]] || die "make demo runs a Kubernetes node (containerd, the kubelet): run it as root"
hack/install-deps.sh
stop_all
rm -rf "$state"
mkdir -p "$state"
chmod 0755 "$state"
echo $$ >"$state/demo.pid"
trap 'trap - EXIT; trap "" INT TERM; log "stopping everything the demo started"; stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "1/6 binaries: kube-apiserver + etcd, then the node's kubelet, scheduler, controller-manager, kube-proxy and CoreDNS, and Prometheus"
log "    (a fresh machine builds them from source with progress shown: ~20 minutes; cached afterwards)"
KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)
hack/node-binaries.sh >/dev/null
prometheus_dir=$(hack/prometheus.sh)
make --no-print-directory build image build-installer IMG=atlas-operator:dev >/dev/null
go build -o "$state/demoview" ./hack/demoview
kubectl="$KUBEBUILDER_ASSETS/kubectl"

log "2/6 a Kubernetes node on this machine, with the atlas image imported"
node_env=$(hack/node.sh start "$state/node") # (an eval of a failed $(...) would not stop the script)
eval "$node_env"
hack/node.sh load "$state/node" dist/atlas-image.tar
host=$ATLAS_NODE_HOST_IP # the host as pods reach it

log "3/6 PostgreSQL, Kafka (embedded, topic with 6 partitions) and Elasticsearch 8, reachable from the pods at $host"
pg_url=$(hack/postgres.sh start "$state/postgres")
kafka_port=$(free_port)
# setsid: a Ctrl-C in the terminal reaches the live view (which then prints the summary),
# not the servers it reads from; the EXIT trap stops them afterwards.
setsid bin/atlas dev kafka --host "$host" --port "$kafka_port" --partitions 6 --data-dir "$state/kafka" >"$state/kafka.log" 2>&1 </dev/null &
echo $! >"$state/kafka.pid"
search_url=$(hack/elasticsearch.sh start "$state/elasticsearch")
wait_port "$host" "$kafka_port" 30 || die "the embedded Kafka broker did not start: $(cat "$state/kafka.log")"
brokers="$host:$kafka_port"

log "4/6 migrations, then the operator installed as users install it: kubectl apply -f dist/install.yaml"
ATLAS_POSTGRES_DSN="$pg_url" bin/atlas migrate up --log-level warn
"$kubectl" apply --server-side -f dist/install.yaml >/dev/null
"$kubectl" wait --for=condition=Established crd/atlasconsumers.events.atlas.io --timeout=30s >/dev/null
"$kubectl" -n atlas-system rollout status deploy/atlas-controller-manager --timeout=2m >/dev/null ||
  die "the operator did not start: $("$kubectl" -n atlas-system describe pods 2>&1 | tail -n 30)"

log "5/6 config/samples, with this machine's addresses, in namespace $namespace"
"$kubectl" create namespace "$namespace" >/dev/null
"$kubectl" -n "$namespace" create secret generic atlas-postgres --from-literal=dsn="${pg_url/127.0.0.1/$host}" >/dev/null
"$kubectl" -n "$namespace" create secret generic atlas-search >/dev/null # this Elasticsearch runs without security
mkdir -p "$state/samples"
cp config/samples/events_v1alpha1_atlasconsumer_*.yaml "$state/samples/"
cat >"$state/samples/kustomization.yaml" <<KUSTOMIZE
namespace: $namespace
resources:
- events_v1alpha1_atlasconsumer_audit.yaml
- events_v1alpha1_atlasconsumer_indexer.yaml
patches:
- target: {kind: AtlasConsumer}
  patch: |-
    - {op: replace, path: /spec/kafka/bootstrapServers, value: ["$brokers"]}
# The indexer's scaling in demo time: lag looked at every 5s, one pod per 2,000 records of
# lag, 30s before scaling down; small batches make one pod slower than a burst.
- target: {kind: AtlasConsumer, name: indexer}
  patch: |-
    - {op: replace, path: /spec/elasticsearch/addresses, value: ["${search_url/127.0.0.1/$host}"]}
    - {op: replace, path: /spec/autoscaling/lagPerReplica, value: 2000}
    - {op: replace, path: /spec/autoscaling/pollInterval, value: 5s}
    - {op: replace, path: /spec/autoscaling/scaleDownStabilization, value: 30s}
    - {op: add, path: /spec/batch, value: {size: 10}}
KUSTOMIZE
"$kubectl" apply --server-side -k "$state/samples"
"$kubectl" -n "$namespace" wait --for=condition=Ready ac/audit ac/indexer --timeout=3m >/dev/null ||
  die "the consumers did not become ready: $("$kubectl" -n "$namespace" get ac,deploy,pods 2>&1)"
"$kubectl" -n "$namespace" get ac,pods -o wide | sed 's/^/    /'

# Prometheus on this machine scrapes the operator and the consumers with
# config/prometheus/scrape.yaml's jobs and evaluates config/prometheus/alerts.yaml (alerts
# after 10 s, the lag threshold at 3,000 records: demo time).
"$kubectl" -n "$namespace" create serviceaccount prometheus >/dev/null
"$kubectl" create clusterrolebinding atlas-demo-prometheus --clusterrole atlas-metrics-reader \
  --serviceaccount "$namespace:prometheus" >/dev/null
mkdir -p "$state/prometheus"
"$kubectl" -n "$namespace" create token prometheus --duration 24h >"$state/prometheus/token"
go run ./hack/promconfig --kubeconfig "$KUBECONFIG" --token-file "$state/prometheus/token" \
  --namespaces "$namespace,atlas-system" --out "$state/prometheus"
prometheus_port=$(free_port)
setsid "$prometheus_dir/prometheus" --config.file="$state/prometheus/prometheus.yml" \
  --storage.tsdb.path="$state/prometheus/data" --web.listen-address="127.0.0.1:$prometheus_port" \
  --log.level=warn >"$state/prometheus.log" 2>&1 </dev/null &
echo $! >"$state/prometheus.pid"
wait_port 127.0.0.1 "$prometheus_port" 30 || die "Prometheus did not start: $(cat "$state/prometheus.log")"
prometheus_url="http://127.0.0.1:$prometheus_port"

cat <<REPORT

    Kubernetes  $("$kubectl" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), node $("$kubectl" get nodes -o name | cut -d/ -f2); export KUBECONFIG=$KUBECONFIG
    PostgreSQL  $pg_url
    Kafka       $brokers (embedded), topic atlas.domain-events.v1
    search      $search_url (Elasticsearch 8.19, no security)
    operator    kubectl -n atlas-system logs deploy/atlas-controller-manager (metrics: https, port 8443 of
                service atlas-controller-manager-metrics-service, for the atlas-metrics-reader role)
    Prometheus  $prometheus_url (HTTP API; no web UI in this build): alerts at $prometheus_url/api/v1/alerts,
                e.g. curl -s '$prometheus_url/api/v1/query?query=atlas_consumer:lag:sum'

REPORT
log "6/6 bursts of generated events; the live view follows (Ctrl-C: summary, then everything stops)"
sleep 2
once=()
[[ ${DEMO_ONCE:-} == 1 ]] && once=(--once)
"$state/demoview" --kubeconfig "$KUBECONFIG" --namespace "$namespace" --kafka-brokers "$brokers" \
  --postgres "$pg_url" --search "$search_url" --atlas bin/atlas --log "$state/produce.log" "${once[@]}"
