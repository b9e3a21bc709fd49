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

# stop_pid PID NAME: SIGTERM, wait up to 20s, then SIGKILL. Never kills by name.
stop_pid() {
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "$name: stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  log "$name: killed after 20s (pid $pid)"
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
