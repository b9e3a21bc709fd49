#!/usr/bin/env bash
# A throw-away PostgreSQL server from the machine's packages (installed with apt when absent).
#   hack/postgres.sh start DIR   initdb in DIR, start on a free 127.0.0.1 port (socket in DIR),
#                                write DIR/pid and DIR/url, print the URL. When DIR already
#                                holds a stopped server, start it again on its old port.
#   hack/postgres.sh stop DIR
#   hack/postgres.sh crash DIR   an immediate stop (pg_ctl -m immediate): no checkpoint, what
#                                is not written from the WAL buffers is lost, as in a crash;
#                                `start DIR` recovers it
# With ATLAS_NODE_HOST_IP set (hack/node.sh prints it), the server also listens there and
# trusts the local node's pod network (NODE_POD_CIDR, default 10.244.0.0/16), so consumer
# pods reach it; the printed URL stays on 127.0.0.1.
# ATLAS_POSTGRES_DURABILITY picks the durability settings: "fast" (the default, for the
# functional tests: fsync, synchronous_commit and full_page_writes off, which a crash can
# lose data to) or "default" (PostgreSQL's own, as production runs it: the benchmarks use it,
# see hack/test.sh --bench). A restarted server keeps the choice it was first started with.
# ATLAS_POSTGRES_SETTINGS adds server settings ("name=value name=value", e.g. the memory and
# checkpoint sizing of a production server); a restarted server keeps them too.
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` OS user.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d && -x $d/initdb ]] || return 1
  echo "$d"
}

as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 bin
  bin=$(pg_bindir) || die "PostgreSQL server binaries not found: run hack/install-deps.sh (apt-get install -y postgresql)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "the postgres OS user is missing: apt-get install -y postgresql"
    chown postgres "$dir"
    chmod 0755 "$dir"
    runuser -u postgres -- test -w "$dir" ||
      die "the postgres OS user cannot write $dir: make every directory above it traversable (chmod o+x) or choose another"
  fi
  local port
  if [[ -f $dir/data/PG_VERSION && -f $dir/port ]]; then
    port=$(cat "$dir/port")
  else
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; die "postgres: initdb failed"; }
    port=$(free_port)
    echo "$port" >"$dir/port"
  fi
  [[ -f $dir/durability ]] || echo "${ATLAS_POSTGRES_DURABILITY:-fast}" >"$dir/durability"
  local durability settings=""
  durability=$(cat "$dir/durability")
  case $durability in
    fast) settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" ;;
    default) ;;
    *) die "postgres: ATLAS_POSTGRES_DURABILITY=$durability: want fast or default" ;;
  esac
  [[ -f $dir/settings ]] || echo "${ATLAS_POSTGRES_SETTINGS:-}" >"$dir/settings"
  local kv
  for kv in $(cat "$dir/settings"); do
    [[ $kv == *=* ]] || die "postgres: ATLAS_POSTGRES_SETTINGS: $kv is not name=value"
    settings+=" -c $kv"
  done
  local listen=127.0.0.1
  if [[ -n ${ATLAS_NODE_HOST_IP:-} ]]; then
    listen="127.0.0.1,$ATLAS_NODE_HOST_IP"
    local pods="host all all ${NODE_POD_CIDR:-10.244.0.0/16} trust # pods of the local node (hack/node.sh)"
    grep -qxF "$pods" "$dir/data/pg_hba.conf" || as_owner sh -c 'echo "$1" >>"$2"' _ "$pods" "$dir/data/pg_hba.conf"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-h $listen -p $port -k $dir $settings -c max_connections=300" >/dev/null ||
    { tail -n 30 "$dir/server.log" >&2; die "postgres: server did not start"; }
  head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
  local url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "$url" >"$dir/url"
  log "postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') up on $listen port $port, pid $(cat "$dir/pid"), $durability durability$( [[ -s $dir/settings && -n $(tr -d '[:space:]' <"$dir/settings") ]] && echo ", $(cat "$dir/settings")")"
  echo "$url"
}

stop() {
  local dir=$1
  [[ -f $dir/pid ]] || return 0
  # fast shutdown: disconnect clients instead of waiting for them (SIGTERM's "smart" mode)
  kill -INT "$(cat "$dir/pid")" 2>/dev/null || true
  stop_pid "$(cat "$dir/pid")" postgres
  rm -f "$dir/pid"
}

crash() {
  local dir=$1 bin
  [[ -f $dir/pid ]] || return 0
  bin=$(pg_bindir) || die "PostgreSQL server binaries not found"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  rm -f "$dir/pid"
}

case "${1:-}" in
  start) start "${2:?usage: postgres.sh start DIR}" ;;
  stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
  crash) crash "${2:?usage: postgres.sh crash DIR}" ;;
  *) die "usage: hack/postgres.sh start|stop|crash DIR" ;;
esac
