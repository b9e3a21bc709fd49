#!/usr/bin/env bash
# Installs the system packages the test stack and the local demo need, when absent:
# PostgreSQL server binaries, a Java 17 JDK and Maven (for Apache Kafka, Elasticsearch and
# OpenSearch from Maven Central; javac builds Elasticsearch's atlas-http module), curl, python3,
# git and kcat. Debian/Ubuntu (apt); as root, or with sudo. OpenSearch 3.x needs Java 21 or newer,
# which Debian 12 does not package: hack/opensearch.sh finds a JDK under /usr/lib/jvm (these
# machines have Temurin 25) or $ATLAS_JAVA_HOME, and says so when there is none.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v git >/dev/null || missing+=(git)
command -v kcat >/dev/null || missing+=(kcat) # an independent (librdkafka) producer for the tests
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager"
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || die "missing ${missing[*]}: install them as root (apt-get install -y ${missing[*]})"
  sudo=sudo
fi
log "installing ${missing[*]} with apt-get"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # Debian starts a cluster on install; the tests run their own throw-away servers.
  $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
