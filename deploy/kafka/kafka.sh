#!/usr/bin/env bash
# The local Apache Kafka broker (KRaft, one combined broker+controller on 127.0.0.1).
#
#   kafka.sh fetch    resolve the broker jars from Maven Central into the cache (once)
#   kafka.sh start    fetch, format the storage once, start, wait until it accepts connections
#   kafka.sh stop     stop it (SIGTERM, then SIGKILL after a bounded wait)
#   kafka.sh status   exit 0 if it is running
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_DATA_DIR (<repo>/.run/kafka), KAFKA_LIBS_DIR (deploy/kafka/.cache/libs),
# KAFKA_START_TIMEOUT seconds (90), KAFKA_HEAP (-Xmx768m -Xms256m).
#
# SASL_SSL instead of PLAINTEXT on KAFKA_PORT: set KAFKA_LISTENER_PROTOCOL=SASL_SSL,
# KAFKA_SSL_KEYSTORE_PEM (the broker's PKCS#8 private key followed by its certificate chain),
# KAFKA_SSL_TRUSTSTORE_PEM (the CA that signed it: the broker talks to itself over TLS too),
# KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (a SCRAM-SHA-256 and SCRAM-SHA-512 user, added when
# the storage is first formatted; the broker uses it too). Clients then need TLS that trusts
# the broker's CA and SCRAM credentials; a client without them is refused.
# KAFKA_LISTENER_PROTOCOL=SASL_PLAINTEXT is the same without TLS (no KAFKA_SSL_* needed).
#
# With a SASL listener:
#   KAFKA_SASL_EXTRA_USERS="agency-a:pw1,gate:pw2"  more SCRAM users (SHA-256 and SHA-512), added
#       with the broker's own when the storage is first formatted (user names: letters, digits,
#       . _ -; passwords: no spaces, quotes, backslashes, commas, '=' or square brackets).
#   KAFKA_AUTHORIZER=on  ACLs: KRaft's StandardAuthorizer, with the broker's own user
#       (KAFKA_SASL_USERNAME) as the only super user; everyone else may do only what an ACL
#       allows (services/gate/grants.py, docs/agency-topics.md). The controller listener then
#       authenticates too (SASL PLAIN, the broker's own user), so no anonymous connection is
#       ever a super user.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.run/kafka}"
LIBS_DIR="${KAFKA_LIBS_DIR:-$HERE/.cache/libs}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP="${KAFKA_HEAP:--Xmx768m -Xms256m}"
PID_FILE="$DATA_DIR/kafka.pid"
LOG_FILE="$DATA_DIR/server.log"

die() { echo "kafka.sh: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH ($2)"
}

fetch() {
  need java "install a Java 17+ runtime, e.g. apt-get install -y openjdk-17-jre-headless"
  # The marker names the pom's checksum: a changed pom resolves the jars again.
  local marker
  marker="$LIBS_DIR/.complete-$(sha256sum "$HERE/pom.xml" | cut -c1-16)"
  if [[ -f "$marker" ]]; then
    return 0
  fi
  need mvn "install Apache Maven, e.g. apt-get install -y maven"
  echo "kafka.sh: resolving the Kafka broker jars into $LIBS_DIR" >&2
  rm -rf "$LIBS_DIR"
  mkdir -p "$LIBS_DIR"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS_DIR" >&2 \
    || die "mvn could not resolve the broker jars (see the output above)"
  touch "$marker"
}

running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Always called in a subshell: exec makes the subshell's pid the JVM's pid.
java_run() {
  exec java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Dkafka.logs.dir="$DATA_DIR" \
    -cp "$LIBS_DIR/*" "$@"
}

# A password kafka.sh can write into JAAS settings and StorageTool's --add-scram as it is.
passable() {
  [[ -n "$1" && "$1" != *[[:space:]\"\\,=\[\]]* ]]
}

# Checks KAFKA_SASL_EXTRA_USERS and prints one "name password" line per user.
extra_users() {
  local entry name password
  local -a entries
  IFS=',' read -r -a entries <<<"${KAFKA_SASL_EXTRA_USERS:-}"
  for entry in "${entries[@]}"; do
    [[ -z "$entry" ]] && continue
    name="${entry%%:*}"
    password="${entry#*:}"
    [[ "$entry" == *:* && "$name" =~ ^[A-Za-z0-9._-]+$ ]] && passable "$password" \
      || die "KAFKA_SASL_EXTRA_USERS: each entry is name:password (see the header of $0)"
    echo "$name $password"
  done
}

# The listener settings for KAFKA_LISTENER_PROTOCOL=SASL_SSL or SASL_PLAINTEXT (appended: later
# keys override the template's, java.util.Properties keeps the last one).
sasl_properties() {
  local protocol="$1" listener jaas controller_map="CONTROLLER:PLAINTEXT"
  listener="$(tr '[:upper:]' '[:lower:]' <<<"$protocol")"
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required"
  jaas+=" username=\"$KAFKA_SASL_USERNAME\" password=\"$KAFKA_SASL_PASSWORD\";"
  if [[ "${KAFKA_AUTHORIZER:-off}" == on ]]; then
    controller_map="CONTROLLER:SASL_PLAINTEXT"
  fi
  echo "listeners=$protocol://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
  echo "advertised.listeners=$protocol://127.0.0.1:$PORT"
  echo "inter.broker.listener.name=$protocol"
  echo "listener.security.protocol.map=$controller_map,$protocol:$protocol"
  echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"
  echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256"
  echo "listener.name.$listener.scram-sha-256.sasl.jaas.config=$jaas"
  echo "listener.name.$listener.scram-sha-512.sasl.jaas.config=$jaas"
  if [[ "$protocol" == SASL_SSL ]]; then
    echo "ssl.keystore.type=PEM"
    echo "ssl.keystore.location=$KAFKA_SSL_KEYSTORE_PEM"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE_PEM"
    echo "ssl.client.auth=none"
  fi
  if [[ "${KAFKA_AUTHORIZER:-off}" == on ]]; then
    # SCRAM users live in the metadata log, which the controller listener must not depend on:
    # it uses PLAIN with the broker's own user, the only one it knows.
    local plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
    plain+=" username=\"$KAFKA_SASL_USERNAME\" password=\"$KAFKA_SASL_PASSWORD\""
    plain+=" user_$KAFKA_SASL_USERNAME=\"$KAFKA_SASL_PASSWORD\";"
    echo "sasl.mechanism.controller.protocol=PLAIN"
    echo "listener.name.controller.sasl.enabled.mechanisms=PLAIN"
    echo "listener.name.controller.plain.sasl.jaas.config=$plain"
    echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    echo "super.users=User:$KAFKA_SASL_USERNAME"
    echo "allow.everyone.if.no.acl.found=false"
  fi
}

configure() {
  mkdir -p "$DATA_DIR"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" "$HERE/server.properties.in" > "$DATA_DIR/server.properties"
  local scram=() protocol="${KAFKA_LISTENER_PROTOCOL:-PLAINTEXT}"
  case "$protocol" in
    PLAINTEXT)
      [[ "${KAFKA_AUTHORIZER:-off}" != on ]] \
        || die "KAFKA_AUTHORIZER=on needs KAFKA_LISTENER_PROTOCOL=SASL_SSL or SASL_PLAINTEXT"
      [[ -z "${KAFKA_SASL_EXTRA_USERS:-}" ]] \
        || die "KAFKA_SASL_EXTRA_USERS needs KAFKA_LISTENER_PROTOCOL=SASL_SSL or SASL_PLAINTEXT"
      ;;
    SASL_SSL|SASL_PLAINTEXT)
      if [[ "$protocol" == SASL_SSL ]]; then
        [[ -f "${KAFKA_SSL_KEYSTORE_PEM:-}" ]] \
          || die "KAFKA_SSL_KEYSTORE_PEM must name the broker's key and certificate (PEM)"
        [[ -f "${KAFKA_SSL_TRUSTSTORE_PEM:-}" ]] \
          || die "KAFKA_SSL_TRUSTSTORE_PEM must name the CA certificate that signed the broker's"
      fi
      [[ -n "${KAFKA_SASL_USERNAME:-}" && -n "${KAFKA_SASL_PASSWORD:-}" ]] \
        || die "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for $protocol"
      [[ "$KAFKA_SASL_USERNAME" =~ ^[A-Za-z0-9._-]+$ ]] && passable "$KAFKA_SASL_PASSWORD" \
        || die "KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD has a character kafka.sh cannot pass on"
      [[ "${KAFKA_AUTHORIZER:-off}" =~ ^(on|off)$ ]] || die "KAFKA_AUTHORIZER is on or off"
      sasl_properties "$protocol" >>"$DATA_DIR/server.properties"
      chmod 600 "$DATA_DIR/server.properties"
      local users name password
      users="$(extra_users)"
      while read -r name password; do
        scram+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$password]"
                --add-scram "SCRAM-SHA-512=[name=$name,password=$password]")
      done <<<"$KAFKA_SASL_USERNAME $KAFKA_SASL_PASSWORD${users:+$'\n'$users}"
      ;;
    *) die "KAFKA_LISTENER_PROTOCOL is PLAINTEXT, SASL_SSL or SASL_PLAINTEXT" ;;
  esac
  if [[ ! -f "$DATA_DIR/logs/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ -n "$cluster_id" ]] || die "could not generate a cluster id (see $LOG_FILE)"
    (java_run kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$DATA_DIR/server.properties" "${scram[@]}" >/dev/null) \
      || die "formatting the storage in $DATA_DIR/logs failed"
  fi
}

start() {
  fetch
  if running; then
    echo "kafka.sh: already running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))" >&2
    return 0
  fi
  if port_open "$PORT"; then
    die "port $PORT is taken by another process; set KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that broker"
  fi
  configure
  local started=$SECONDS
  (java_run kafka.Kafka "$DATA_DIR/server.properties" </dev/null >>"$DATA_DIR/stdout.log" 2>&1) &
  echo $! > "$PID_FILE"
  while ! port_open "$PORT"; do
    if ! running; then
      die "the broker exited during start-up; see $DATA_DIR/stdout.log and $LOG_FILE"
    fi
    if (( SECONDS - started > START_TIMEOUT )); then
      stop
      die "the broker did not open 127.0.0.1:$PORT within ${START_TIMEOUT}s; see $LOG_FILE"
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker up on 127.0.0.1:$PORT after $((SECONDS - started))s (logs: $LOG_FILE)" >&2
}

stop() {
  if ! running; then
    rm -f "$PID_FILE"
    return 0
  fi
  local pid waited=0
  pid="$(cat "$PID_FILE")"
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= 60 )); then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
