#!/usr/bin/env bash
# Builds the node half of a single-node Kubernetes (hack/node.sh) from the Go module proxy:
# kubelet, kube-scheduler, kube-controller-manager and kube-proxy (k8s.io/kubernetes, with the
# same wrapper module as hack/envtest-binaries.sh, see k8s_build in hack/lib.sh), crictl
# (sigs.k8s.io/cri-tools, used to tear pods down cleanly) and CoreDNS (github.com/coredns/
# coredns, the cluster DNS). Caches them under $ATLAS_CACHE_DIR/node/v<k8s version> and
# prints that directory on stdout:
#   NODE_BINARIES=$(hack/node-binaries.sh)
# kube-apiserver, etcd and kubectl come from hack/envtest-binaries.sh. The first run takes
# ~11 minutes on 2 cores with an empty Go build cache (~5 when envtest's binaries were built
# before: the Go build cache is shared); later runs return at once. Never run it beside
# another heavy build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

K8S_VERSION="${NODE_K8S_VERSION:-${ENVTEST_K8S_VERSION:-1.37.2}}"
CRICTL_VERSION="${NODE_CRICTL_VERSION:-1.37.0}"
COREDNS_VERSION="${NODE_COREDNS_VERSION:-1.15.0}"
dest="$ATLAS_CACHE_DIR/node/v$K8S_VERSION"
bins=(kube-scheduler kube-controller-manager kubelet kube-proxy) # quickest first

complete() {
  local b
  for b in "${bins[@]}" crictl coredns-$COREDNS_VERSION; do [[ -x $dest/$b ]] || return 1; done
}
if complete; then
  echo "$dest"
  exit 0
fi

k8s_build "$K8S_VERSION" "$ATLAS_CACHE_DIR/node/build/kubernetes-v$K8S_VERSION" "$dest" "${bins[@]}"

if [[ ! -x $dest/crictl ]]; then
  # cri-tools' go.mod has no replace directives: `go install module@version` works.
  log "node: building crictl v$CRICTL_VERSION"
  tmpbin=$(mktemp -d "$dest/.crictl.XXXXXX")
  with_heartbeat "building crictl" \
    env CGO_ENABLED=0 GOBIN="$tmpbin" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION" || die "building crictl v$CRICTL_VERSION failed"
  mv "$tmpbin/crictl" "$dest/crictl"
  rm -rf "$tmpbin"
fi

if [[ ! -x $dest/coredns-$COREDNS_VERSION ]]; then
  # CoreDNS's main package is its module root. Built in a throw-away wrapper module, so
  # its requirements never touch this project's go.mod.
  log "node: building CoreDNS v$COREDNS_VERSION"
  mod="$ATLAS_CACHE_DIR/node/build/coredns-v$COREDNS_VERSION"
  mkdir -p "$mod"
  if [[ ! -f $mod/go.sum ]]; then
    printf 'module atlas.local/coredns-wrapper\n\ngo 1.26\n\nrequire github.com/coredns/coredns v%s\n' "$COREDNS_VERSION" >"$mod/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' >"$mod/tools.go"
    (cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  fi
  (cd "$mod" && with_heartbeat "building CoreDNS" \
    env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -tags tools -trimpath -ldflags "-s -w" \
    -o "$dest/coredns-$COREDNS_VERSION.tmp" github.com/coredns/coredns) || die "building CoreDNS v$COREDNS_VERSION failed"
  mv "$dest/coredns-$COREDNS_VERSION.tmp" "$dest/coredns-$COREDNS_VERSION"
fi

"$dest/kubelet" --version >&2
echo "$dest"
