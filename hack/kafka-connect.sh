#!/usr/bin/env bash
# A REAL Kafka Connect worker (standalone mode) with the Debezium JDBC sink connector, from the
# jars Maven Central serves: the peer the audit benchmark compares the audit consumer with.
#   hack/kafka-connect.sh fetch                          resolves the jars into the cache only
#   hack/kafka-connect.sh start DIR WORKER CONNECTOR     starts `ConnectStandalone WORKER CONNECTOR`
#                                                        (properties files), logging to DIR,
#                                                        writes DIR/pid; its REST API on
#                                                        the worker's listeners answers once up
#   hack/kafka-connect.sh stop DIR
# The worker's plugin.path must be the directory `hack/kafka-connect.sh plugins` prints.
# Jars are cached under $ATLAS_CACHE_DIR/kafka-connect-<version> (the runtime) and
# .../debezium-jdbc-<version> (the connector, loaded in its own plugin class loader).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_VERSION="${ATLAS_KAFKA_VERSION:-4.4.0}"
# 3.4.0.Final resolves with its dependencies from Maven Central; 3.6.x and 3.7.x do not.
DEBEZIUM_VERSION="${ATLAS_DEBEZIUM_VERSION:-3.4.0.Final}"
POSTGRES_JDBC_VERSION=42.7.14
LOG4J_VERSION=2.25.5
runtime="$ATLAS_CACHE_DIR/kafka-connect-$KAFKA_VERSION"
plugins="$ATLAS_CACHE_DIR/debezium-jdbc-$DEBEZIUM_VERSION/plugins"

fetch() {
  mvn_fetch "$runtime" "org.apache.kafka:connect-runtime:$KAFKA_VERSION" "org.apache.kafka:connect-json:$KAFKA_VERSION" \
    "org.apache.kafka:connect-transforms:$KAFKA_VERSION" "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION"
  local plugin="$plugins/debezium-connector-jdbc"
  if [[ ! -f $plugin/.complete ]]; then
    mvn_fetch "$plugins/../fetch" "io.debezium:debezium-connector-jdbc:$DEBEZIUM_VERSION" "org.postgresql:postgresql:$POSTGRES_JDBC_VERSION"
    rm -rf "$plugin"
    mkdir -p "$plugin"
    # the connector's own class loader: everything it needs except what the worker provides
    # (the Connect API, the Kafka client, SLF4J, and Jackson's core: the worker's Jackson modules are
    # found through the ServiceLoader, and a second jackson-databind in the plugin makes them
    # "not a subtype" of its Module, so every task would fail)
    local jar
    for jar in "$plugins/../fetch/lib/"*.jar; do
      case $(basename "$jar") in
        connect-api-* | kafka-clients-* | slf4j-api-* | jackson-core-* | jackson-databind-* | jackson-annotations-*) ;;
        *) cp "$jar" "$plugin/" ;;
      esac
    done
    touch "$plugin/.complete"
  fi
}

start() {
  local dir=$1 worker=$2 connector=$3
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  cat >"$dir/log4j2.properties" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/connect.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.connect.name = org.apache.kafka.connect.runtime.WorkerSinkTask
logger.connect.level = INFO
logger.hibernate.name = org.hibernate
logger.hibernate.level = WARN
PROPS
  local java
  java=$(java_at_least 17 "Kafka Connect $KAFKA_VERSION")
  nohup "$java" -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$runtime/lib/*" \
    org.apache.kafka.connect.cli.ConnectStandalone "$worker" "$connector" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  log "kafka-connect: Kafka Connect $KAFKA_VERSION (standalone) with the Debezium JDBC sink $DEBEZIUM_VERSION starting, pid $(cat "$dir/pid")"
}

case "${1:-}" in
  fetch) fetch ;;
  plugins) fetch >&2; echo "$plugins" ;;
  start) start "${2:?usage: kafka-connect.sh start DIR WORKER CONNECTOR}" "${3:?worker properties}" "${4:?connector properties}" ;;
  stop) pid_file_stop "${2:?usage: kafka-connect.sh stop DIR}/pid" kafka-connect ;;
  *) die "usage: hack/kafka-connect.sh fetch | plugins | start DIR WORKER CONNECTOR | stop DIR" ;;
esac
