#!/usr/bin/env bash
# `make demo`: the local, embedded default stack on this machine.
#   hack/demo.sh        start PostgreSQL (migrated), an embedded Kafka broker (kfake), OpenSearch
#                       and a Kubernetes API server with the AtlasConsumer CRD, run the operator
#                       against it, apply config/samples, publish generated events, report what
#                       is up, and run until Ctrl-C
#   hack/demo.sh down   stop what a demo left running
# DEMO_ONCE=1 reports and stops instead of waiting for Ctrl-C.
# Running the consumer Deployments' pods on this machine is the demo issue's next step.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

# Under /tmp, not the cache: the postgres OS user (when run as root) must reach its data.
state="${ATLAS_DEMO_DIR:-${TMPDIR:-/tmp}/atlas-demo}"

stop_all() {
  [[ -d $state ]] || return 0
  local f
  for f in "$state"/manager.pid "$state"/kafka.pid "$state"/kube.pid; do
    [[ -f $f ]] && stop_pid "$(cat "$f")" "$(basename "$f" .pid)" && rm -f "$f"
  done
  hack/opensearch.sh stop "$state/opensearch"
  hack/postgres.sh stop "$state/postgres"
  return 0
}

if [[ ${1:-} == down ]]; then
  # A running demo stops its own stack when signalled; then sweep whatever is left.
  if [[ -f $state/demo.pid ]]; then stop_pid "$(cat "$state/demo.pid")" demo; fi
  stop_all
  exit 0
fi

hack/install-deps.sh
stop_all
rm -rf "$state"
mkdir -p "$state"
chmod 0755 "$state"
echo $$ >"$state/demo.pid"
trap 'trap - EXIT; trap "" INT TERM; log "stopping the demo stack"; stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "1/6 control-plane binaries (the first run builds them: ~12 minutes, cached afterwards)"
KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)
export KUBEBUILDER_ASSETS
[[ -x bin/atlas ]] || make --no-print-directory build

log "2/6 starting PostgreSQL, embedded Kafka, OpenSearch and the Kubernetes API"
pg_url=$(hack/postgres.sh start "$state/postgres")
search_url=$(hack/opensearch.sh start "$state/opensearch")
kafka_port=$(free_port)
nohup bin/atlas dev kafka --port "$kafka_port" --data-dir "$state/kafka" >"$state/kafka.log" 2>&1 &
echo $! >"$state/kafka.pid"
go build -o "$state/devkube" ./hack/devkube
nohup "$state/devkube" --write-kubeconfig "$state/kubeconfig" >"$state/kube.log" 2>&1 &
echo $! >"$state/kube.pid"
wait_port 127.0.0.1 "$kafka_port" 30 || die "embedded kafka did not start: $(cat "$state/kafka.log")"
for _ in $(seq 1 600); do [[ -s $state/kubeconfig ]] && break; sleep 0.1; done
[[ -s $state/kubeconfig ]] || die "kube-apiserver did not start: $(cat "$state/kube.log")"

log "3/6 migrations, then the operator against the local Kubernetes API"
ATLAS_POSTGRES_DSN="$pg_url" bin/atlas migrate up --log-level warn
kubectl="$KUBEBUILDER_ASSETS/kubectl --kubeconfig $state/kubeconfig"
metrics_port=$(free_port)
nohup bin/atlas manager --kubeconfig "$state/kubeconfig" --consumer-image atlas-operator:dev \
  --metrics-bind-address "127.0.0.1:$metrics_port" --metrics-secure=false --health-probe-bind-address 0 \
  >"$state/manager.log" 2>&1 &
echo $! >"$state/manager.pid"
wait_port 127.0.0.1 "$metrics_port" 30 || die "the operator did not start: $(cat "$state/manager.log")"

log "4/6 applying config/samples (addresses of this stack) in namespace atlas-demo"
$kubectl create namespace atlas-demo >/dev/null
$kubectl -n atlas-demo create secret generic atlas-postgres --from-literal=dsn="$pg_url" >/dev/null
$kubectl -n atlas-demo create secret generic atlas-search >/dev/null # OpenSearch here runs without security
mkdir -p "$state/samples"
cp config/samples/events_v1alpha1_atlasconsumer_*.yaml "$state/samples/"
cat >"$state/samples/kustomization.yaml" <<KUSTOMIZE
namespace: atlas-demo
resources:
- events_v1alpha1_atlasconsumer_audit.yaml
- events_v1alpha1_atlasconsumer_indexer.yaml
patches:
- target: {kind: AtlasConsumer}
  patch: |-
    - {op: replace, path: /spec/kafka/bootstrapServers, value: ["127.0.0.1:$kafka_port"]}
- target: {kind: AtlasConsumer, name: indexer}
  patch: |-
    - {op: replace, path: /spec/elasticsearch/addresses, value: ["$search_url"]}
    - {op: add, path: /spec/elasticsearch/openSearch, value: true}
    - {op: replace, path: /spec/autoscaling/lagPerReplica, value: 500}
    - {op: replace, path: /spec/autoscaling/pollInterval, value: 5s}
    - {op: replace, path: /spec/autoscaling/scaleDownStabilization, value: 30s}
KUSTOMIZE
$kubectl apply --server-side -k "$state/samples"

log "5/6 publishing 2,000 generated domain events"
ATLAS_POSTGRES_DSN="$pg_url" bin/atlas produce --kafka-brokers "127.0.0.1:$kafka_port" --generate 2000 --apply-items --progress never
log "   waiting for the operator's next lag poll (every 5s for the indexer)"
for _ in $(seq 1 100); do
  [[ $($kubectl -n atlas-demo get ac indexer -o jsonpath='{.status.lag.total}' 2>/dev/null) -gt 0 ]] 2>/dev/null && break
  sleep 0.2
done

log "6/6 what is up"
cat <<REPORT

  PostgreSQL     $pg_url
                 $(psql "$pg_url" -Atc 'select version()' | cut -d, -f1)
  Kafka (kfake)  127.0.0.1:$kafka_port   topic atlas.domain-events.v1
  OpenSearch     $search_url   $(curl -fsS "$search_url" | python3 -c 'import json,sys; v=json.load(sys.stdin)["version"]; print(v.get("distribution","elasticsearch"), v["number"])')
  Kubernetes     $($kubectl version -o json | python3 -c 'import json,sys; print("kube-apiserver", json.load(sys.stdin)["serverVersion"]["gitVersion"])')
                 CRD: $($kubectl get crd -o name | tr '\n' ' ')
  kubeconfig     $state/kubeconfig
  operator       atlas manager, metrics http://127.0.0.1:$metrics_port/metrics, log $state/manager.log

$($kubectl -n atlas-demo get ac,deployments,services 2>&1 | sed 's/^/  /')

  The operator reconciled both AtlasConsumers into Deployments and scales the indexer on
  its lag; running those Deployments' pods on this machine (a local node) is the demo
  issue's next step. Stop with Ctrl-C or 'make demo-down'.

REPORT

if [[ ${DEMO_ONCE:-} == 1 ]]; then exit 0; fi
log "running; Ctrl-C stops everything"
while :; do
  sleep 3600 &
  wait $! # returns at once on a signal, so the EXIT trap stops the stack
done
