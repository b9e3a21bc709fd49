#!/usr/bin/env bash
# A REAL single-node OpenSearch (Elasticsearch 7.10-compatible REST API) from the jars Maven
# Central serves, started in-process by hack/opensearch/AtlasSearchNode.java (2.x on Java 17+,
# 3.x on Java 21+: the Temurin 25 JDK under /usr/lib/jvm).
# (Elasticsearch 8, the default test server, is hack/elasticsearch.sh.)
#   hack/opensearch.sh start DIR   starts on a free 127.0.0.1 port (also on ATLAS_NODE_HOST_IP when set,
#                                  for the local node's pods), writes DIR/pid and DIR/url, prints the URL
#   hack/opensearch.sh stop DIR
#   hack/opensearch.sh fetch       resolves the jars into the cache only
# ATLAS_OPENSEARCH_TLS=1 (2.x only) makes the REST API serve HTTPS with a certificate of a CA made
# for this node, and demand a client certificate of that CA: DIR/tls holds ca.crt, client.crt and
# client.key (and the server's own key store); the URL printed is https.
# ATLAS_OPENSEARCH_VERSION picks the line: 2.19.6 (the default; "2" means it) or a 3.x release
# ("3" means 3.9.0, the newest whose modules Maven Central serves). The Java runtime is chosen
# by it (java_at_least in lib.sh): the first of $ATLAS_JAVA_HOME, the `java` on PATH, $JAVA_HOME
# and the JDKs under /usr/lib/jvm (Temurin first) whose version is at least 17 for 2.x, 21 for 3.x.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OPENSEARCH_VERSION="${ATLAS_OPENSEARCH_VERSION:-2.19.6}"
case $OPENSEARCH_VERSION in
  2) OPENSEARCH_VERSION=2.19.6 ;;
  3) OPENSEARCH_VERSION=3.9.0 ;;
esac
major=${OPENSEARCH_VERSION%%.*}
here="$(cd "$(dirname "$0")" && pwd)"
cache="$ATLAS_CACHE_DIR/opensearch-$OPENSEARCH_VERSION"
launcher="$here/opensearch/AtlasSearchNode.java"
case $major in
  2) java_min=17 ;;
  3) java_min=21 ;;
  *) die "opensearch: ATLAS_OPENSEARCH_VERSION=$OPENSEARCH_VERSION: only the 2.x and 3.x lines are supported" ;;
esac

fetch() {
  mvn_fetch "$cache" "org.opensearch:opensearch:$OPENSEARCH_VERSION" \
    "org.opensearch.plugin:transport-netty4-client:$OPENSEARCH_VERSION" \
    "org.opensearch.plugin:analysis-common:$OPENSEARCH_VERSION"
  # OpenSearch depends on log4j-api only; the node needs the implementation of the same version.
  if ! compgen -G "$cache/lib/log4j-core-*.jar" >/dev/null; then
    local api log4j
    api=$(compgen -G "$cache/lib/log4j-api-*.jar" | head -n 1) || true
    [[ -n $api ]] || die "opensearch: no log4j-api among OpenSearch $OPENSEARCH_VERSION's jars in $cache/lib"
    log4j=$(basename "$api" .jar)
    log4j=${log4j#log4j-api-}
    log "maven: resolving org.apache.logging.log4j:log4j-core:$log4j (the log4j-api version OpenSearch $OPENSEARCH_VERSION uses)"
    mvn -B -q dependency:copy -Dartifact="org.apache.logging.log4j:log4j-core:$log4j" \
      -DoutputDirectory="$cache/lib" >"$cache/mvn-log4j.log" 2>&1 ||
      { tail -n 30 "$cache/mvn-log4j.log" >&2; die "maven could not resolve log4j-core $log4j"; }
  fi
}

# tls_files DIR: a CA, the node's certificate for 127.0.0.1, localhost and ATLAS_NODE_HOST_IP
# (in a PKCS12 key store for Java) and a client certificate, all under DIR.
tls_files() {
  local tls=$1 san="IP:127.0.0.1,DNS:localhost"
  [[ -n ${ATLAS_NODE_HOST_IP:-} ]] && san+=",IP:$ATLAS_NODE_HOST_IP"
  mkdir -p "$tls"
  pki_ca "$tls" atlas-test-search-ca
  pki_cert "$tls" server atlas-search "" serverAuth "$san"
  pki_cert "$tls" client atlas-indexer "" clientAuth
  openssl pkcs12 -export -in "$tls/server.crt" -inkey "$tls/server.key" -certfile "$tls/ca.crt" \
    -name server -out "$tls/server.p12" -passout pass:atlas-test
}

start() {
  local dir=$1
  fetch
  local java flags=()
  java=$(java_at_least "$java_min" "OpenSearch $OPENSEARCH_VERSION")
  # Lucene 10 maps files through java.lang.foreign: allow it without the JDK's warning.
  ((major >= 3)) && flags+=(--enable-native-access=ALL-UNNAMED)
  if [[ -n ${ATLAS_OPENSEARCH_TLS:-} ]]; then
    ((major == 2)) || die "opensearch: ATLAS_OPENSEARCH_TLS: HTTPS is wired for the 2.x line only"
    tls_files "$dir/tls"
    export ATLAS_SEARCH_TLS_KEYSTORE="$dir/tls/server.p12" ATLAS_SEARCH_TLS_PASSWORD=atlas-test \
      ATLAS_SEARCH_TLS_CLIENT_CA="$dir/tls/ca.crt" SEARCH_NODE_TLS="$dir/tls"
  fi
  search_node_start opensearch "OpenSearch $OPENSEARCH_VERSION" "$dir" "$java" "$launcher" "$cache/lib" "${flags[@]}"
}

case "${1:-}" in
  start) start "${2:?usage: opensearch.sh start DIR}" ;;
  stop) pid_file_stop "${2:?usage: opensearch.sh stop DIR}/pid" opensearch ;;
  fetch) fetch ;;
  *) die "usage: hack/opensearch.sh start|stop DIR | fetch" ;;
esac
