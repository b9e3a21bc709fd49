#!/usr/bin/env bash
# A REAL single-node Elasticsearch 8.19 from the jars Maven Central serves, started in-process by
# hack/elasticsearch/AtlasElasticsearchNode.java on Java 17 or newer (a JDK: the module is compiled here).
# Maven Central serves the server jar (org.elasticsearch:elasticsearch) and its libraries but none
# of the distribution's modules: not transport-netty4 (HTTP and node-to-node), rest-root (GET /),
# analysis-common nor x-pack. The node loads one module of ours instead,
# hack/elasticsearch/AtlasHttpModule.java (compiled here into the cache): an HTTP server on the JDK's
# com.sun.net.httpserver handing every request to Elasticsearch's REST layer, a transport for a
# cluster of one, and GET /. No security (x-pack is absent): plain HTTP on 127.0.0.1.
#   hack/elasticsearch.sh start DIR   starts on a free 127.0.0.1 port (also on ATLAS_NODE_HOST_IP when set,
#                                     for the local node's pods), writes DIR/pid and DIR/url, prints the URL
#   hack/elasticsearch.sh stop DIR
#   hack/elasticsearch.sh fetch       resolves the jars and builds the module into the cache only
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ES_VERSION="${ATLAS_ELASTICSEARCH_VERSION:-8.19.7}"
here="$(cd "$(dirname "$0")" && pwd)"
cache="$ATLAS_CACHE_DIR/elasticsearch-$ES_VERSION"
launcher="$here/elasticsearch/AtlasElasticsearchNode.java"
module_src="$here/elasticsearch/AtlasHttpModule.java"

# module_dir prints the cached build of the module for this source (rebuilt when it changes).
module_dir() {
  local sum
  sum=$(sha256sum "$module_src" | cut -c1-16)
  echo "$cache/atlas-http-$sum"
}

fetch() {
  mvn_fetch "$cache" "org.elasticsearch:elasticsearch:$ES_VERSION"
  local mod java
  mod=$(module_dir)
  [[ -f $mod/.complete ]] && return 0
  java=$(java_at_least 17 "Building Elasticsearch $ES_VERSION's atlas-http module" jdk)
  log "elasticsearch: building the atlas-http module ($module_src)"
  rm -rf "$cache"/atlas-http-* # builds of earlier sources
  mkdir -p "$mod/classes" "$mod/atlas-http"
  "$(dirname "$java")/javac" --release 17 -nowarn -cp "$cache/lib/*" -d "$mod/classes" "$module_src" >"$mod/javac.log" 2>&1 ||
    { cat "$mod/javac.log" >&2; die "elasticsearch: the atlas-http module does not compile against Elasticsearch $ES_VERSION"; }
  "$(dirname "$java")/jar" cf "$mod/atlas-http/atlas-http.jar" -C "$mod/classes" .
  cat >"$mod/atlas-http/plugin-descriptor.properties" <<PROPS
name=atlas-http
description=HTTP on the JDK's server, a single-node transport and GET / (hack/elasticsearch)
version=$ES_VERSION
classname=atlas.es.AtlasHttpModule
java.version=17
elasticsearch.version=$ES_VERSION
PROPS
  touch "$mod/.complete"
}

start() {
  local dir=$1
  fetch
  local java
  java=$(java_at_least 17 "Elasticsearch $ES_VERSION")
  mkdir -p "$dir"
  rm -rf "$dir/modules"
  mkdir -p "$dir/modules" "$dir/plugins"
  cp -r "$(module_dir)/atlas-http" "$dir/modules/"
  search_node_start elasticsearch "Elasticsearch $ES_VERSION" "$dir" "$java" "$launcher" "$cache/lib" --enable-native-access=ALL-UNNAMED
}

case "${1:-}" in
  start) start "${2:?usage: elasticsearch.sh start DIR}" ;;
  stop) pid_file_stop "${2:?usage: elasticsearch.sh stop DIR}/pid" elasticsearch ;;
  fetch) fetch ;;
  *) die "usage: hack/elasticsearch.sh start|stop DIR | fetch" ;;
esac
