#!/usr/bin/env bash
# Builds Prometheus and promtool from the Go module proxy (github.com/prometheus/prometheus,
# whose go.mod has no replace directives, so `go install module@version` works) and caches
# them under $ATLAS_CACHE_DIR/prometheus/v<version>; prints that directory:
#   PROMETHEUS_DIR=$(hack/prometheus.sh)   # $PROMETHEUS_DIR/prometheus, $PROMETHEUS_DIR/promtool
# promtool runs the alert rules' unit tests (config/prometheus/alerts_test.yaml); prometheus
# scrapes the operator and the consumers in test/e2e and `make demo`. The web UI's assets are
# built with npm upstream and are not in the Go module, so this Prometheus serves its HTTP
# API (queries, alerts, targets) but no UI pages. The first run takes ~6 minutes on 2 cores;
# later runs return at once. Never run it beside another heavy build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PROMETHEUS_VERSION="${ATLAS_PROMETHEUS_VERSION:-3.16.0}"
# Prometheus 3.16.0 is the Go module version v0.316.0.
module_version="v0.$(awk -F. '{printf "%d%02d.%d", $1, $2, $3}' <<<"$PROMETHEUS_VERSION")"
# Only Kubernetes service discovery is compiled in (Prometheus's own build tags): the other
# twenty-odd discovery plugins and their cloud SDKs would double the build time.
tags=remove_all_sd,enable_kubernetes_sd
dest="$ATLAS_CACHE_DIR/prometheus/v$PROMETHEUS_VERSION-kubernetes-sd"
if [[ -x $dest/prometheus && -x $dest/promtool ]]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$dest"
tmpbin=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$tmpbin"' EXIT
for cmd in promtool prometheus; do
  [[ -x $dest/$cmd ]] && continue
  log "prometheus: building $cmd $PROMETHEUS_VERSION (module $module_version)"
  with_heartbeat "building $cmd" \
    env CGO_ENABLED=0 GOBIN="$tmpbin" go install -trimpath -tags "$tags" \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/$cmd@$module_version" || die "building $cmd $PROMETHEUS_VERSION failed"
  mv "$tmpbin/$cmd" "$dest/$cmd"
done
"$dest/promtool" --version >&2
echo "$dest"
