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
STAGING_VERSION="v0.${K8S_VERSION#*.}"
dest="$ATLAS_CACHE_DIR/envtest/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION"

if [[ -x $dest/kube-apiserver && -x $dest/etcd && -x $dest/kubectl ]]; then
  echo "$dest"
  exit 0
fi
command -v go >/dev/null || die "Go is required to build the envtest binaries"
mkdir -p "$dest"
work="$ATLAS_CACHE_DIR/envtest/build"
mkdir -p "$work"

build_k8s() {
  local mod="$work/kubernetes-v$K8S_VERSION"
  mkdir -p "$mod"
  log "envtest: resolving k8s.io/kubernetes v$K8S_VERSION from the Go module proxy"
  local gomod
  gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@v$K8S_VERSION's go.mod"
  {
    echo "module atlas.local/envtest-k8s"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    # Every staging module the kubernetes go.mod replaces with ./staging/src/... is
    # published on the proxy at v0.<minor>.<patch>: point the replace there instead.
    grep -E '^\s*k8s.io/[^ ]+ => ./staging/src/' "$gomod" | awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && GOFLAGS=-mod=mod go mod download >/dev/null)
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for bin in kubectl kube-apiserver; do
    log "envtest: building $bin v$K8S_VERSION (kube-apiserver takes ~10 min cold on 2 cores)"
    (cd "$mod" && with_heartbeat "building $bin" \
      env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -tags tools -trimpath -ldflags "$ld" -o "$dest/$bin.tmp" "k8s.io/kubernetes/cmd/$bin")
    mv "$dest/$bin.tmp" "$dest/$bin"
  done
}

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
[[ -x $dest/kube-apiserver && -x $dest/kubectl ]] || build_k8s
"$dest/kube-apiserver" --version >&2
echo "$dest"
