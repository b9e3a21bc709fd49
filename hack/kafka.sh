#!/usr/bin/env bash
# A REAL single-node Apache Kafka (KRaft, broker+controller) from the jars Maven Central serves.
#   hack/kafka.sh start DIR   formats storage in DIR, starts the broker on a free 127.0.0.1 port
#                             (ATLAS_NODE_HOST_IP instead when set, for the local node's pods),
#                             waits until it answers, writes DIR/pid and DIR/bootstrap, prints host:port
#                             When DIR holds a stopped broker, starts it again on its old port
#                             with its data.
#   hack/kafka.sh stop DIR    stops the broker recorded in DIR/pid
# ATLAS_KAFKA_SASL=OAUTHBEARER makes the client listener SASL_PLAINTEXT with OAUTHBEARER only,
# validated by Kafka's own unsecured-JWT validator (unsigned tokens; it checks expiry and that
# the "scope" claim holds atlas.events): a real broker refusing clients without a valid token.
# Jars are cached under $ATLAS_CACHE_DIR/kafka-<version>.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_VERSION="${ATLAS_KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION=2.25.5
cache="$ATLAS_CACHE_DIR/kafka-$KAFKA_VERSION"

start() {
  local dir=$1
  mvn_fetch "$cache" "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
    "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  local port cport restart=false
  # The broker listens on (and advertises) 127.0.0.1, or ATLAS_NODE_HOST_IP when set
  # (hack/node.sh prints it) so the local node's pods reach it too.
  local host=${ATLAS_NODE_HOST_IP:-127.0.0.1}
  if [[ -f $dir/server.properties && -f $dir/data/meta.properties && -f $dir/port ]]; then
    restart=true
    port=$(cat "$dir/port")
    host=$(sed -n 's|^advertised.listeners=[A-Z_]*://\([^:,]*\):.*$|\1|p' "$dir/server.properties")
  else
    port=$(free_port)
    cport=$(free_port)
    while [[ $cport == "$port" ]]; do cport=$(free_port); done
    local listeners
    case ${ATLAS_KAFKA_SASL:-} in
      "") listeners="listeners=PLAINTEXT://$host:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$host:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT" ;;
      OAUTHBEARER)
        local iport
        iport=$(free_port)
        listeners="listeners=SASL_PLAINTEXT://$host:$port,INTERNAL://127.0.0.1:$iport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_PLAINTEXT://$host:$port,INTERNAL://127.0.0.1:$iport
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=OAUTHBEARER
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"broker\" unsecuredValidatorRequiredScope=\"atlas.events\";" ;;
      *) die "kafka: ATLAS_KAFKA_SASL=$ATLAS_KAFKA_SASL: only OAUTHBEARER is wired" ;;
    esac
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
$listeners
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=16777216
log.retention.check.interval.ms=60000
PROPS
    echo "$port" >"$dir/port"
  fi
  cat >"$dir/log4j2.properties" <<PROPS
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
  local cp="$cache/lib/*"
  local jvm=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$cp")
  if [[ $restart == false ]]; then
    local cluster_id
    # Like Kafka's own random-uuid: base64url, never starting with '-' (which the
    # storage tool would read as an option: one id in 64 did, and the broker never started).
    cluster_id=$(python3 -c '
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break')
    java "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
      { cat "$dir/format.log" >&2; die "kafka: formatting storage failed"; }
  fi
  nohup java "${jvm[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  echo "$host:$port" >"$dir/bootstrap"
  if ! wait_port "$host" "$port" 90; then
    tail -n 40 "$dir/stdout.log" "$dir/server.log" >&2 || true
    stop "$dir"
    die "kafka: broker did not listen on $host:$port within 90s"
  fi
  log "kafka: Apache Kafka $KAFKA_VERSION (KRaft) up on $host:$port, pid $(cat "$dir/pid")"
  echo "$host:$port"
}

stop() {
  local dir=$1
  [[ -f $dir/pid ]] || return 0
  stop_pid "$(cat "$dir/pid")" kafka
  rm -f "$dir/pid"
}

case "${1:-}" in
  start) start "${2:?usage: kafka.sh start DIR}" ;;
  stop) stop "${2:?usage: kafka.sh stop DIR}" ;;
  fetch) mvn_fetch "$cache" "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" "org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION" ;;
  *) die "usage: hack/kafka.sh start|stop DIR | fetch" ;;
esac
