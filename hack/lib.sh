# Shared helpers for the hack/ scripts. Source it; do not execute it.
# Everything expensive is cached outside the repository, keyed by version.

ATLAS_CACHE_DIR="${ATLAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/atlas-operator}"
export ATLAS_CACHE_DIR

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# free_port prints a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_port HOST PORT SECONDS: wait until something accepts TCP connections.
wait_port() {
  local host=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# mvn_fetch DEST GROUP:ARTIFACT:VERSION...: resolves the artifacts and all their runtime
# dependencies from Maven Central into DEST/lib (a cache directory; skipped when DEST/.complete exists).
mvn_fetch() {
  local dest=$1; shift
  [[ -f $dest/.complete ]] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is required: apt-get install -y maven"
  command -v java >/dev/null || die "Java 17 is required: apt-get install -y openjdk-17-jre-headless"
  mkdir -p "$dest"
  local deps="" gav g a v
  for gav in "$@"; do
    IFS=: read -r g a v <<<"$gav"
    deps+="<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
  done
  cat >"$dest/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>atlas.local</groupId><artifactId>fetch</artifactId><version>0</version>
  <packaging>pom</packaging>
  <dependencies>$deps</dependencies>
</project>
POM
  log "maven: resolving $* (first run downloads; cached in $dest)"
  rm -rf "$dest/lib"
  mvn -B -q -f "$dest/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$dest/lib" >"$dest/mvn.log" 2>&1 ||
    { tail -n 30 "$dest/mvn.log" >&2; die "maven could not resolve $*"; }
  touch "$dest/.complete"
}

# java_home_version HOME: the Java feature version (17, 25, ...) of HOME/bin/java, or nothing.
java_home_version() {
  [[ -x $1/bin/java ]] || return 0
  "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p'
}

# java_at_least MIN WHAT [jdk]: prints the first java executable of version MIN or newer among
# $ATLAS_JAVA_HOME, the `java` on PATH, $JAVA_HOME and the JDKs under /usr/lib/jvm (Temurin
# first), with javac beside it when "jdk" is given; fails saying WHAT needs it when there is none.
java_at_least() {
  local min=$1 what=$2 kind=${3:-runtime} homes=() h v
  [[ -n ${ATLAS_JAVA_HOME:-} ]] && homes+=("$ATLAS_JAVA_HOME")
  if command -v java >/dev/null; then homes+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"); fi
  [[ -n ${JAVA_HOME:-} ]] && homes+=("$JAVA_HOME")
  for h in /usr/lib/jvm/temurin-* /usr/lib/jvm/*; do [[ -d $h ]] && homes+=("$h"); done
  for h in "${homes[@]}"; do
    v=$(java_home_version "$h")
    [[ $kind != jdk || -x $h/bin/javac ]] || continue
    if [[ $v =~ ^[0-9]+$ ]] && ((v >= min)); then
      echo "$h/bin/java"
      return 0
    fi
  done
  die "$what needs a Java $min or newer ${kind/jdk/JDK (javac)} and none was found (looked at: ${homes[*]:-nothing}); install one (e.g. a Temurin 25 JDK under /usr/lib/jvm) or set ATLAS_JAVA_HOME"
}

# pki_ca DIR CN: a self-signed EC CA, DIR/ca.{key,crt}, unless DIR/ca.crt exists.
pki_ca() {
  local pki=$1 cn=$2
  [[ -f $pki/ca.crt ]] && return 0
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout "$pki/ca.key" -subj "/CN=$cn" -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

# pki_cert DIR NAME CN ORG USAGE [SAN]: DIR/NAME.{key,crt} signed by DIR's CA (pki_ca), unless
# DIR/NAME.crt exists. USAGE is the extended key usage (serverAuth, clientAuth).
pki_cert() {
  local pki=$1 name=$2 cn=$3 org=$4 usage=$5 san=${6:-}
  [[ -f $pki/$name.crt ]] && return 0
  local subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org$subj"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# search_node_start NAME WHAT DIR JAVA LAUNCHER LIB [JVM_FLAG...]: starts a single search node
# (Elasticsearch or OpenSearch) in-process: `JAVA [flags] -cp LIB/* LAUNCHER DIR HTTP_PORT
# TRANSPORT_PORT` on two free ports, logging to DIR/stdout.log; waits up to 120 s for the cluster
# to be yellow, then writes DIR/pid and DIR/url and prints the URL. On failure it shows the log's
# tail, stops the node and dies. With SEARCH_NODE_TLS set to a directory holding ca.crt,
# client.crt and client.key (the node serving HTTPS and asking for a client certificate), the
# URL is https and the health check presents them.
search_node_start() {
  local name=$1 what=$2 dir=$3 java=$4 launcher=$5 lib=$6
  shift 6
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local port tport
  port=$(free_port)
  tport=$(free_port)
  while [[ $tport == "$port" ]]; do tport=$(free_port); done
  nohup "$java" -Xms512m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.disable.jmx=true "$@" \
    -cp "$lib/*" "$launcher" "$dir" "$port" "$tport" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  local url="http://127.0.0.1:$port" i started=$SECONDS curl_tls=()
  if [[ -n ${SEARCH_NODE_TLS:-} ]]; then
    url="https://127.0.0.1:$port"
    curl_tls=(--cacert "$SEARCH_NODE_TLS/ca.crt" --cert "$SEARCH_NODE_TLS/client.crt" --key "$SEARCH_NODE_TLS/client.key")
  fi
  for ((i = 0; i < 1200; i++)); do
    if curl -fsS "${curl_tls[@]}" "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "$url" >"$dir/url"
      log "$name: $what up on $url in $((SECONDS - started))s, pid $(cat "$dir/pid"), $("$java" -version 2>&1 | head -n 1)"
      echo "$url"
      return 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 40 "$dir/stdout.log" >&2 || true
  pid_file_stop "$dir/pid" "$name"
  die "$name: node did not become healthy on $url within 120s"
}

# pid_file_stop FILE NAME: stops the process whose pid FILE holds (stop_pid), then removes FILE.
pid_file_stop() {
  [[ -f $1 ]] || return 0
  stop_pid "$(cat "$1")" "$2"
  rm -f "$1"
}

# stop_pid PID NAME [SECONDS]: SIGTERM, wait up to SECONDS (default 20), then SIGKILL.
# Never kills by name.
stop_pid() {
  local pid=$1 name=$2 secs=${3:-20} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "$name: stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  log "$name: killed after ${secs}s (pid $pid)"
}

# with_heartbeat WHAT CMD...: runs CMD, logging "still WHAT" every 30s so a long silent
# build shows it is alive.
with_heartbeat() {
  local what=$1; shift
  local start=$SECONDS
  ( while sleep 30; do log "still $what ($(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s)"; done ) &
  local beat=$!
  local rc=0
  "$@" || rc=$?
  kill "$beat" 2>/dev/null
  wait "$beat" 2>/dev/null || true
  return "$rc"
}

# k8s_build VERSION MODDIR DEST BIN...: builds k8s.io/kubernetes/cmd/BIN of Kubernetes VERSION
# (e.g. 1.37.2) from the Go module proxy into DEST/BIN, statically (CGO_ENABLED=0, -trimpath),
# with the version stamped in. A plain `go install k8s.io/kubernetes/cmd/...@v1.37.2` fails
# (its go.mod replaces the staging modules with ./staging/src/...), so MODDIR gets a throw-away
# wrapper module that requires k8s.io/kubernetes and points every staging module at its
# published v0.<minor>.<patch>. Binaries already in DEST are not rebuilt.
k8s_build() {
  local version=$1 mod=$2 dest=$3; shift 3
  local staging="v0.${version#*.}" bin todo=()
  for bin in "$@"; do [[ -x $dest/$bin ]] || todo+=("$bin"); done
  [[ ${#todo[@]} -eq 0 ]] && return 0
  command -v go >/dev/null || die "Go is required to build the Kubernetes binaries"
  mkdir -p "$mod" "$dest"
  local imports=""
  for bin in "$@"; do imports+=$'\t_ "k8s.io/kubernetes/cmd/'"$bin"$'"\n'; done
  local tools=$'//go:build tools\n\npackage tools\n\nimport (\n'"$imports"$')\n'
  if [[ ! -f $mod/go.sum || $(cat "$mod/tools.go" 2>/dev/null) != "${tools%$'\n'}" ]]; then
    log "k8s: resolving k8s.io/kubernetes v$version from the Go module proxy"
    local gomod
    gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@v$version's go.mod"
    {
      echo "module atlas.local/k8s-wrapper"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes v$version"
      echo
      # Every staging module the kubernetes go.mod replaces with ./staging/src/... is
      # published on the proxy at v0.<minor>.<patch>: point the replace there instead.
      grep -E '^\s*k8s.io/[^ ]+ => ./staging/src/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
    } >"$mod/go.mod"
    printf '%s' "$tools" >"$mod/tools.go"
    (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
    (cd "$mod" && GOFLAGS=-mod=mod go mod download >/dev/null)
  fi
  local minor=${version#*.}; minor=${minor%%.*}
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for bin in "${todo[@]}"; do
    log "k8s: building $bin v$version (kube-apiserver, kubelet and kube-controller-manager take minutes cold on 2 cores)"
    (cd "$mod" && with_heartbeat "building $bin" \
      env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -tags tools -trimpath -ldflags "$ld" -o "$dest/$bin.tmp" "k8s.io/kubernetes/cmd/$bin") ||
      die "building $bin v$version failed"
    mv "$dest/$bin.tmp" "$dest/$bin"
  done
}
