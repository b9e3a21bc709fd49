#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller (the GitOps controllers the e2e
# GitOps test runs on the node) from the Go module proxy, packs each into an image with
# hack/image (no registry, no Docker), and copies their CRDs out of the module sources.
# Everything is cached under $ATLAS_CACHE_DIR/flux/v<version>; prints that directory:
#   FLUX_DIR=$(hack/flux.sh)
#   $FLUX_DIR/source-controller-image.tar, $FLUX_DIR/kustomize-controller-image.tar
#     (tags atlas.local/flux-source-controller:v<version>, atlas.local/flux-kustomize-controller:v<version>)
#   $FLUX_DIR/crds/*.yaml
# The first run takes ~10 minutes on 2 cores (~4 when the Kubernetes libraries are already in
# the Go build cache); later runs return at once. Never run it beside another heavy build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

FLUX_VERSION="${FLUX_CONTROLLERS_VERSION:-1.9.6}"
dest="$ATLAS_CACHE_DIR/flux/v$FLUX_VERSION"
controllers=(kustomize-controller source-controller)

complete() {
  local c
  for c in "${controllers[@]}"; do [[ -f $dest/$c-image.tar ]] || return 1; done
  [[ -f $dest/crds/.complete ]]
}
if complete; then
  echo "$dest"
  exit 0
fi
mkdir -p "$dest"

# The controllers' go.mod files carry replace directives that `go install pkg@version` refuses,
# so each is built in a throw-away wrapper module that requires it (like CoreDNS in
# hack/node-binaries.sh). The wrapper repeats the replaces that matter, pinned to versions
# the module proxy serves:
#   - both: their api submodule at the same version, and the go-digest pseudo-version that
#     the distribution libraries need;
#   - source-controller: github.com/fluxcd/pkg/artifact at v0.18.0;
#   - kustomize-controller: kustomize's api and kyaml at the versions it was tested with.
wrapper() {
  local c=$1 mod=$2
  {
    printf 'module atlas.local/%s-wrapper\n\ngo 1.26\n\n' "$c"
    printf 'require (\n\tgithub.com/fluxcd/%s v%s\n\tgithub.com/fluxcd/%s/api v%s\n)\n\n' "$c" "$FLUX_VERSION" "$c" "$FLUX_VERSION"
    printf 'replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be\n'
    case $c in
      source-controller)
        printf 'replace github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.0\n' ;;
      kustomize-controller)
        printf 'replace sigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1\n'
        printf 'replace sigs.k8s.io/kustomize/kyaml => sigs.k8s.io/kustomize/kyaml v0.21.1\n'
        printf 'replace gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1\n' ;;
    esac
  } >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/fluxcd/%s"\n' "$c" >"$mod/tools.go"
}

for c in "${controllers[@]}"; do
  [[ -f $dest/$c-image.tar ]] && continue
  mod="$ATLAS_CACHE_DIR/flux/build/$c-v$FLUX_VERSION"
  mkdir -p "$mod"
  if [[ ! -x $dest/$c ]]; then
    log "flux: building $c v$FLUX_VERSION"
    if [[ ! -f $mod/go.sum ]]; then
      wrapper "$c" "$mod"
      (cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >"$mod/tidy.log" 2>&1) || true
    fi
    (cd "$mod" && with_heartbeat "building $c" \
      env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -tags tools -trimpath -ldflags "-s -w" \
      -o "$dest/$c.tmp" "github.com/fluxcd/$c") || {
      [[ -f $mod/tidy.log ]] && tail -n 20 "$mod/tidy.log" >&2
      die "building $c v$FLUX_VERSION failed"
    }
    mv "$dest/$c.tmp" "$dest/$c"
  fi
  (cd "$here/.." && GOOS= GOARCH= go run ./hack/image --binary "$dest/$c" --path "/$c" --cmd "" \
    --title "$c" --version "v$FLUX_VERSION" --source "https://github.com/fluxcd/$c" \
    --tag "atlas.local/flux-$c:v$FLUX_VERSION" --output "$dest/$c-image.tar" >&2) ||
    die "packing $c into an image failed"
done

if [[ ! -f $dest/crds/.complete ]]; then
  # The CRDs ship inside the module sources (config/crd/bases), at the version built above.
  mkdir -p "$dest/crds"
  for c in "${controllers[@]}"; do
    src=$(cd "$ATLAS_CACHE_DIR/flux/build/$c-v$FLUX_VERSION" &&
      GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "github.com/fluxcd/$c") || die "finding $c's module sources failed"
    cp "$src"/config/crd/bases/*.yaml "$dest/crds/"
  done
  chmod 0644 "$dest"/crds/*.yaml
  touch "$dest/crds/.complete"
fi
echo "$dest"
