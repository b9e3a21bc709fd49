#!/usr/bin/env bash
# Starts (up) or stops (down) the real servers the test suite needs, under STATE_DIR:
#   eval "$(hack/test-stack.sh up STATE_DIR)"   # prints export lines for the tests
#   hack/test-stack.sh down STATE_DIR
# A component whose ATLAS_TEST_* variable is already set is not started (the tests use
# the given server instead). The servers start in parallel.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

up() {
  local state=$1
  mkdir -p "$state"
  local pids=() names=()
  if [[ -z ${ATLAS_TEST_POSTGRES_URL:-} ]]; then
    "$here/postgres.sh" start "$state/postgres" >"$state/postgres.url" 2>"$state/postgres.start.log" &
    pids+=($!); names+=(postgres)
  fi
  if [[ -z ${ATLAS_TEST_KAFKA_BROKERS:-} ]]; then
    "$here/kafka.sh" start "$state/kafka" >"$state/kafka.url" 2>"$state/kafka.start.log" &
    pids+=($!); names+=(kafka)
  fi
  # The search servers: Elasticsearch 8 (the default), and the OpenSearch 2.19 and 3.x lines the
  # indexer's tests run against too (OpenSearch 3 needs Java 21+: the Temurin JDK).
  if [[ -z ${ATLAS_TEST_ELASTICSEARCH_URL:-} ]]; then
    "$here/elasticsearch.sh" start "$state/elasticsearch" >"$state/elasticsearch.url" 2>"$state/elasticsearch.start.log" &
    pids+=($!); names+=(elasticsearch)
  fi
  if [[ -z ${ATLAS_TEST_OPENSEARCH_URL:-} ]]; then
    ATLAS_OPENSEARCH_VERSION=2 "$here/opensearch.sh" start "$state/opensearch" >"$state/opensearch.url" 2>"$state/opensearch.start.log" &
    pids+=($!); names+=(opensearch)
  fi
  if [[ -z ${ATLAS_TEST_OPENSEARCH3_URL:-} ]]; then
    ATLAS_OPENSEARCH_VERSION=3 "$here/opensearch.sh" start "$state/opensearch3" >"$state/opensearch3.url" 2>"$state/opensearch3.start.log" &
    pids+=($!); names+=(opensearch3)
  fi
  local failed=0 i
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed=1
      log "${names[$i]} failed to start:"
      cat "$state/${names[$i]}.start.log" >&2
    else
      cat "$state/${names[$i]}.start.log" >&2
    fi
  done
  ((failed == 0)) || { down "$state"; die "the test stack did not start"; }
  [[ -s $state/postgres.url ]] && echo "export ATLAS_TEST_POSTGRES_URL='$(cat "$state/postgres.url")'"
  [[ -s $state/kafka.url ]] && echo "export ATLAS_TEST_KAFKA_BROKERS='$(cat "$state/kafka.url")'"
  [[ -s $state/elasticsearch.url ]] && echo "export ATLAS_TEST_ELASTICSEARCH_URL='$(cat "$state/elasticsearch.url")'"
  [[ -s $state/opensearch.url ]] && echo "export ATLAS_TEST_OPENSEARCH_URL='$(cat "$state/opensearch.url")'"
  [[ -s $state/opensearch3.url ]] && echo "export ATLAS_TEST_OPENSEARCH3_URL='$(cat "$state/opensearch3.url")'"
  return 0
}

down() {
  local state=$1
  [[ -d $state ]] || return 0
  [[ -d $state/elasticsearch ]] && "$here/elasticsearch.sh" stop "$state/elasticsearch"
  [[ -d $state/opensearch ]] && "$here/opensearch.sh" stop "$state/opensearch"
  [[ -d $state/opensearch3 ]] && "$here/opensearch.sh" stop "$state/opensearch3"
  [[ -d $state/kafka ]] && "$here/kafka.sh" stop "$state/kafka"
  [[ -d $state/postgres ]] && "$here/postgres.sh" stop "$state/postgres"
  return 0
}

case "${1:-}" in
  up) up "${2:?usage: test-stack.sh up STATE_DIR}" ;;
  down) down "${2:?usage: test-stack.sh down STATE_DIR}" ;;
  *) die "usage: hack/test-stack.sh up|down STATE_DIR" ;;
esac
