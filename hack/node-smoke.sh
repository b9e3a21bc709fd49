#!/usr/bin/env bash
# Proves that the local single node (hack/node.sh) runs the project's image as real pods:
#   hack/node-smoke.sh [IMAGE.tar]     (default dist/atlas-image.tar, made by `make image` when missing)
# In a throw-away node it checks that
#   1. the node becomes Ready;
#   2. a bare Pod running `atlas version` with the consumers' securityContext (non-root 65532,
#      read-only root filesystem, no capabilities, no privilege escalation, seccomp
#      RuntimeDefault) Succeeds and `kubectl logs` shows "atlas ...";
#   3. a pod reaches a TCP server on the host at $ATLAS_NODE_HOST_IP (the bridge address),
#      and does not reach one bound to 127.0.0.1.
# Then it stops the node and removes it. Needs root. Exits non-zero on the first failure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

image=${1:-dist/atlas-image.tar}
if [[ ! -f $image ]]; then
  [[ $image == dist/atlas-image.tar ]] || die "no image tarball $image"
  make --no-print-directory image >&2
fi
dir=$(mktemp -d /tmp/atlas-smoke.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_pid "$p" "http server"; done
  hack/node.sh stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT

t0=$SECONDS
eval "$(hack/node.sh start "$dir")"
log "smoke: 1/3 node Ready in $((SECONDS - t0))s"
kubectl="$(hack/envtest-binaries.sh)/kubectl"
hack/node.sh load "$dir" "$image" 2>/dev/null
pause_image=$(ctr images ls -q | grep '^atlas.local/pause:' | head -n 1)

restricted='{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
             "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}'
pod() { # NAME IMAGE ARGS-JSON: a bare Pod, restartPolicy Never, the consumers' securityContext
  cat <<JSON
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$1"},
 "spec": {"restartPolicy": "Never",
          "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
          "containers": [{"name": "main", "image": "$2", "imagePullPolicy": "Never", "args": $3,
                          "securityContext": $restricted}]}}
JSON
}
# finish NAME: waits until the pod Succeeded or Failed, prints the phase
finish() {
  local phase i
  for ((i = 0; i < 600; i++)); do
    phase=$($kubectl get pod "$1" -o jsonpath='{.status.phase}')
    [[ $phase == Succeeded || $phase == Failed ]] && { echo "$phase"; return 0; }
    sleep 0.1
  done
  $kubectl describe pod "$1" >&2
  die "smoke: pod $1 did not finish within 60s"
}

tag=$(tar -xOf "$image" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')
pod atlas-version "$tag" '["version"]' | $kubectl apply -f - >/dev/null
[[ $(finish atlas-version) == Succeeded ]] || { $kubectl describe pod atlas-version >&2; die "smoke: atlas version failed"; }
out=$($kubectl logs atlas-version)
[[ $out == atlas\ * ]] || die "smoke: unexpected output of atlas version: $out"
log "smoke: 2/3 atlas version ran in a restricted pod: $out"

www=$(mktemp -d "$dir/www.XXXXXX")
open_port=$(free_port)
(cd "$www" && exec python3 -m http.server -b "$ATLAS_NODE_HOST_IP" "$open_port" >/dev/null 2>&1) &
pids+=($!)
loopback_port=$(free_port)
(cd "$www" && exec python3 -m http.server -b 127.0.0.1 "$loopback_port" >/dev/null 2>&1) &
pids+=($!)
wait_port "$ATLAS_NODE_HOST_IP" "$open_port" 10 && wait_port 127.0.0.1 "$loopback_port" 10 || die "smoke: http servers did not start"
pod reach "$pause_image" "[\"--dial\", \"$ATLAS_NODE_HOST_IP:$open_port\"]" | $kubectl apply -f - >/dev/null
pod no-reach "$pause_image" "[\"--dial\", \"$ATLAS_NODE_HOST_IP:$loopback_port,127.0.0.1:$loopback_port\"]" | $kubectl apply -f - >/dev/null
[[ $(finish reach) == Succeeded ]] || { $kubectl logs reach >&2; die "smoke: a pod could not reach $ATLAS_NODE_HOST_IP:$open_port"; }
[[ $(finish no-reach) == Failed ]] || { $kubectl logs no-reach >&2; die "smoke: a pod reached a server bound to 127.0.0.1"; }
log "smoke: 3/3 pods reach the host at $ATLAS_NODE_HOST_IP, not its 127.0.0.1:"
$kubectl logs reach | sed 's/^/    /' >&2
$kubectl logs no-reach | sed 's/^/    /' >&2
log "smoke: passed in $((SECONDS - t0))s"
