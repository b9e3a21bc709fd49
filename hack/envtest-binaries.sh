#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl for controller-runtime's envtest from the
# Go module proxy (setup-envtest cannot download on these machines) and caches them
# under $ATLAS_CACHE_DIR/envtest/<k8s version>. Prints that directory on stdout:
#   export KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)
# The first run takes ~12 minutes on 2 cores; later runs return at once.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.7.3}"
dest="$ATLAS_CACHE_DIR/envtest/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION"

if [[ -x $dest/kube-apiserver && -x $dest/etcd && -x $dest/kubectl ]]; then
  echo "$dest"
  exit 0
fi
command -v go >/dev/null || die "Go is required to build the envtest binaries"
mkdir -p "$dest"
work="$ATLAS_CACHE_DIR/envtest/build"
mkdir -p "$work"

build_etcd() {
  local mod="$work/etcd-v$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<GOMOD
module atlas.local/envtest-etcd

go 1.26

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
GOMOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  log "envtest: building etcd v$ETCD_VERSION"
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && with_heartbeat "building etcd" \
    env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dest/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$dest/etcd.tmp" "$dest/etcd"
}

[[ -x $dest/etcd ]] || build_etcd
# kubectl first: it is the quicker one, and a broken toolchain shows sooner.
k8s_build "$K8S_VERSION" "$work/kubernetes-v$K8S_VERSION" "$dest" kubectl kube-apiserver
"$dest/kube-apiserver" --version >&2
echo "$dest"
