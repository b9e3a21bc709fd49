#!/usr/bin/env bash
# Builds the real `helm` (Helm 4) from the Go module proxy, caches it under
# $ATLAS_CACHE_DIR/helm/v<version> and prints the binary's path on stdout:
#   HELM=$(hack/helm.sh)
# There is no release download here, and helm's go.mod has no replace directives, so
# `go install module@version` builds it (about 3 minutes on 2 cores with a cold Go build
# cache; later runs return at once). Never run it beside another heavy build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HELM_VERSION="${ATLAS_HELM_VERSION:-4.3.1}"
dest="$ATLAS_CACHE_DIR/helm/v$HELM_VERSION"
if [[ -x $dest/helm ]]; then
  echo "$dest/helm"
  exit 0
fi
mkdir -p "$dest"
log "helm: building helm v$HELM_VERSION from the Go module proxy"
tmpbin=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$tmpbin"' EXIT
with_heartbeat "building helm" \
  env CGO_ENABLED=0 GOBIN="$tmpbin" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
  "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" || die "building helm v$HELM_VERSION failed"
"$tmpbin/helm" version >/dev/null || die "the helm v$HELM_VERSION just built does not run"
mv "$tmpbin/helm" "$dest/helm"
echo "$dest/helm"
