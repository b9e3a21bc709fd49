#!/usr/bin/env bash
# `make demo`: the local, embedded default stack on this machine.
#   hack/demo.sh        start PostgreSQL, an embedded Kafka broker (kfake), OpenSearch and a
#                       Kubernetes API server with the AtlasConsumer CRD, publish generated
#                       events, report what is up, and run until Ctrl-C
#   hack/demo.sh down   stop what a demo left running
# DEMO_ONCE=1 reports and stops instead of waiting for Ctrl-C.
# The operator and consumers join this stack as their issues land.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

# Under /tmp, not the cache: the postgres OS user (when run as root) must reach its data.
state="${ATLAS_DEMO_DIR:-${TMPDIR:-/tmp}/atlas-demo}"

stop_all() {
  [[ -d $state ]] || return 0
  local f
  for f in "$state"/kafka.pid "$state"/kube.pid; do
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

log "1/5 control-plane binaries (the first run builds them: ~12 minutes, cached afterwards)"
KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)
export KUBEBUILDER_ASSETS
[[ -x bin/atlas ]] || make --no-print-directory build

log "2/5 starting PostgreSQL, embedded Kafka, OpenSearch and the Kubernetes API"
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

log "3/5 publishing 2,000 generated domain events"
bin/atlas produce --kafka-brokers "127.0.0.1:$kafka_port" --generate 2000 --progress never

log "4/5 what is up"
kubectl="$KUBEBUILDER_ASSETS/kubectl --kubeconfig $state/kubeconfig"
cat <<REPORT

  PostgreSQL     $pg_url
                 $(psql "$pg_url" -Atc 'select version()' | cut -d, -f1)
  Kafka (kfake)  127.0.0.1:$kafka_port   topic atlas.domain-events.v1
  OpenSearch     $search_url   $(curl -fsS "$search_url" | python3 -c 'import json,sys; v=json.load(sys.stdin)["version"]; print(v.get("distribution","elasticsearch"), v["number"])')
  Kubernetes     $($kubectl version -o json | python3 -c 'import json,sys; print("kube-apiserver", json.load(sys.stdin)["serverVersion"]["gitVersion"])')
                 CRD: $($kubectl get crd -o name | tr '\n' ' ')
  kubeconfig     $state/kubeconfig

  The operator (atlas manager) and the consumers are not implemented yet: their issues add
  them to this stack. Stop with Ctrl-C or 'make demo-down'.

REPORT

if [[ ${DEMO_ONCE:-} == 1 ]]; then exit 0; fi
log "5/5 running; Ctrl-C stops everything"
while :; do
  sleep 3600 &
  wait $! # returns at once on a signal, so the EXIT trap stops the stack
done
