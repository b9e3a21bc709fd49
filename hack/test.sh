#!/usr/bin/env bash
# `make test`: installs what is missing, builds (or takes from the cache) the envtest
# control plane, starts a real single-node Kubernetes with the project's image and Flux's
# source- and kustomize-controller images on it (when
# the end-to-end tests are among the packages; needs root), real Postgres, Apache Kafka,
# Elasticsearch 8 and OpenSearch (2.19 and 3.x) servers, runs every Go test against them, and
# stops everything it started, also on failure or Ctrl-C.
#   hack/test.sh [PKG...]            run the tests (default ./...)
#   hack/test.sh --bench [PKG...]    run the benchmarks instead (`make bench`)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

mode=test
if [[ ${1:-} == --bench ]]; then mode=bench; shift; fi
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./...)

started=$SECONDS
hack/install-deps.sh

log "step 1/5: envtest control plane (kube-apiserver + etcd), helm, Prometheus and promtool, and Flux's controllers"
KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)
export KUBEBUILDER_ASSETS
ATLAS_TEST_HELM=$(hack/helm.sh)
export ATLAS_TEST_HELM
ATLAS_TEST_PROMETHEUS_DIR=$(hack/prometheus.sh)
export ATLAS_TEST_PROMETHEUS_DIR
flux_dir=""
if [[ $mode == test ]] && go list "${pkgs[@]}" | grep -q '/test/e2e$'; then
  flux_dir=$(hack/flux.sh)
fi

log "step 2/5: generated code and manifests, the installer (dist/install.yaml), the API reference, gofmt"
tree_sum() { find api config charts docs -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum; }
before=$(tree_sum)
make --no-print-directory generate manifests build-installer api-docs >/dev/null
if [[ $(tree_sum) != "$before" ]]; then
  git --no-pager diff --stat -- api config charts docs >&2 || true
  die "generated code or manifests were out of date (now regenerated): review and commit them"
fi
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
[[ -z $unformatted ]] || die "gofmt would change: $unformatted"

state=$(mktemp -d "${TMPDIR:-/tmp}/atlas-test.XXXXXX")
cleanup() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # a second Ctrl-C must not interrupt the cleanup (children inherit this)
  log "stopping the test stack"
  # the node must leave nothing behind (pods, mounts, the bridge, kube-proxy's rules)
  if [[ -d $state/node ]] && ! hack/node.sh stop "$state/node"; then
    log "the node left something behind when it stopped (see above)"
    ((rc != 0)) || rc=1
  fi
  hack/test-stack.sh down "$state" || true
  rm -rf "$state" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The end-to-end tests (test/e2e) need the node; other packages do not.
listed=$(go list "${pkgs[@]}")
e2e_pkgs=() other_pkgs=()
for p in $listed; do
  if [[ $p == */test/e2e ]]; then e2e_pkgs+=("$p"); else other_pkgs+=("$p"); fi
done
if [[ $mode == test && ${#e2e_pkgs[@]} -gt 0 ]]; then
  log "step 3/5: a real single node (kubelet, containerd; the first run builds it) with the project's image"
  node_env=$(hack/node.sh start "$state/node") # (an eval of a failed $(...) would not stop the script)
  eval "$node_env"
  export ATLAS_TEST_NODE_KUBECONFIG=$KUBECONFIG ATLAS_TEST_NODE_HOST_IP=$ATLAS_NODE_HOST_IP ATLAS_TEST_NODE_IMAGE=atlas-operator:dev \
    ATLAS_TEST_NODE_PROBE_IMAGE=$ATLAS_NODE_PAUSE_IMAGE
  unset KUBECONFIG # the node is for test/e2e; nothing else may pick it up by accident
  make --no-print-directory image IMG="$ATLAS_TEST_NODE_IMAGE" >/dev/null
  hack/node.sh load "$state/node" dist/atlas-image.tar
  # The operator's next version, for the upgrade test: the same sources built as another version.
  export ATLAS_TEST_NODE_NEXT_IMAGE=atlas-operator:next
  make --no-print-directory image IMG="$ATLAS_TEST_NODE_NEXT_IMAGE" VERSION="$(git describe --tags --always --dirty 2>/dev/null || echo dev)-next" \
    IMAGE_TAR=dist/atlas-image-next.tar >/dev/null
  hack/node.sh load "$state/node" dist/atlas-image-next.tar
  # Flux's source-controller and kustomize-controller, for the GitOps test (built in step 1).
  export ATLAS_TEST_FLUX_DIR=$flux_dir
  hack/node.sh load "$state/node" "$flux_dir/source-controller-image.tar"
  hack/node.sh load "$state/node" "$flux_dir/kustomize-controller-image.tar"
else
  log "step 3/5: no end-to-end tests among the packages: no node"
fi

log "step 4/5: starting real Postgres, Apache Kafka, Elasticsearch 8.19, OpenSearch 2.19 and OpenSearch 3.x"
chmod 0755 "$state" # the postgres OS user must reach its data directory inside
# The benchmarks measure Postgres as production runs it: its default durability, and sized
# as a production server is rather than as initdb leaves it (shared buffers that hold the
# audit table's indexes, checkpoints spaced by time rather than forced every gigabyte of WAL,
# full-page images compressed), and timing its WAL writes and syncs (track_wal_io_timing: a
# clock read around each, so the curves can say when the disk, not the consumer, was slow).
# Every figure printed names these settings. The functional tests keep it fast.
if [[ $mode == bench ]]; then
  export ATLAS_POSTGRES_DURABILITY=default
  export ATLAS_POSTGRES_SETTINGS="${ATLAS_POSTGRES_SETTINGS-shared_buffers=2GB max_wal_size=16GB checkpoint_timeout=15min wal_compression=zstd track_wal_io_timing=on}"
fi
exports=$(hack/test-stack.sh up "$state")
eval "$exports"

log "step 5/5: go $mode ${pkgs[*]}"
if [[ $mode == bench ]]; then
  export ATLAS_BENCH_SUMMARY="$state/bench-summary.tsv"
  : >"$ATLAS_BENCH_SUMMARY"
  rc=0
  go test -run '^$' -bench . -benchmem -count=1 -p 1 -timeout 120m "${pkgs[@]}" || rc=$?
  echo
  echo "Summary (one run, same machine; $(hostname), $(nproc) cores):"
  { printf 'work\tours\treference or peer\tratio\tgoal\tmet\n'; cat "$ATLAS_BENCH_SUMMARY"; } | column -t -s $'\t'
  exit "$rc"
else
  go vet "${pkgs[@]}"
  # -v so the smoke tests' logs (what each real server reported) show; the noise of
  # RUN/PAUSE/CONT lines and passing subtests is filtered out of the terminal, kept in the log.
  gotest() {
    go test -v ${GOTEST_FLAGS:--count=1 -p 2 -timeout 30m} "$@" 2>&1 | tee -a "$state/go-test.log" |
      grep -vE '^(=== (RUN|PAUSE|CONT|NAME)|\s+--- PASS)'
    return "${PIPESTATUS[0]}"
  }
  set +e
  rc=0
  if [[ ${#other_pkgs[@]} -gt 0 ]]; then gotest "${other_pkgs[@]}" || rc=$?; fi
  # The end-to-end tests run last and alone: they watch the operator scale real pods
  # against time windows, and need the machine's two cores for it.
  if [[ ${#e2e_pkgs[@]} -gt 0 ]]; then gotest -p 1 "${e2e_pkgs[@]}" || rc=$?; fi
  set -e
  passed=$(grep -cE '^\s*--- PASS' "$state/go-test.log" || true)
  failed=$(grep -cE '^\s*--- FAIL' "$state/go-test.log" || true)
  log "tests finished in $((SECONDS - started))s"
  echo "$passed passed, $failed failed"
  exit "$rc"
fi
