#!/usr/bin/env bash
# A REAL single-node OpenSearch 2.19 (Elasticsearch 7.10-compatible REST API) from the jars
# Maven Central serves, started in-process by hack/opensearch/AtlasSearchNode.java.
# Elasticsearch 8 cannot be assembled here: its server jar is served but its HTTP module
# (org.elasticsearch.plugin:transport-netty4[-client]:8.x) is not.
#   hack/opensearch.sh start DIR   starts on a free 127.0.0.1 port (also on ATLAS_NODE_HOST_IP when set,
#                                  for the local node's pods), writes DIR/pid and DIR/url, prints the URL
#   hack/opensearch.sh stop DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OPENSEARCH_VERSION="${ATLAS_OPENSEARCH_VERSION:-2.19.6}"
LOG4J_VERSION=2.25.4 # the log4j-api version opensearch 2.19.6 depends on
cache="$ATLAS_CACHE_DIR/opensearch-$OPENSEARCH_VERSION"
launcher="$(cd "$(dirname "$0")" && pwd)/opensearch/AtlasSearchNode.java"

fetch() {
  mvn_fetch "$cache" "org.opensearch:opensearch:$OPENSEARCH_VERSION" \
    "org.opensearch.plugin:transport-netty4-client:$OPENSEARCH_VERSION" \
    "org.opensearch.plugin:analysis-common:$OPENSEARCH_VERSION" \
    "org.apache.logging.log4j:log4j-core:$LOG4J_VERSION"
}

start() {
  local dir=$1
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local port tport
  port=$(free_port)
  tport=$(free_port)
  while [[ $tport == "$port" ]]; do tport=$(free_port); done
  nohup java -Xms512m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.disable.jmx=true \
    -cp "$cache/lib/*" "$launcher" "$dir" "$port" "$tport" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  local url="http://127.0.0.1:$port" i
  for ((i = 0; i < 1200; i++)); do
    if curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "$url" >"$dir/url"
      log "opensearch: OpenSearch $OPENSEARCH_VERSION up on $url, pid $(cat "$dir/pid")"
      echo "$url"
      return 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 40 "$dir/stdout.log" >&2 || true
  stop "$dir"
  die "opensearch: node did not become healthy on $url within 120s"
}

stop() {
  local dir=$1
  [[ -f $dir/pid ]] || return 0
  stop_pid "$(cat "$dir/pid")" opensearch
  rm -f "$dir/pid"
}

case "${1:-}" in
  start) start "${2:?usage: opensearch.sh start DIR}" ;;
  stop) stop "${2:?usage: opensearch.sh stop DIR}" ;;
  fetch) fetch ;;
  *) die "usage: hack/opensearch.sh start|stop DIR | fetch" ;;
esac
