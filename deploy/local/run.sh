#!/usr/bin/env bash
# Start the local stack with the demo configuration: the Kafka broker (unless
# KAFKA_BOOTSTRAP_SERVERS names a running one) and every carealert service, in the background.
# Logs and pid files live in .run/. `run.sh status` lists what is running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUN_DIR="$ROOT/.run"
BIN="$ROOT/.venv/bin"
mkdir -p "$RUN_DIR"

export CAREALERT_API_KEYS_FILE="${CAREALERT_API_KEYS_FILE:-$ROOT/deploy/local/api-keys.yaml}"
# Two demo agencies (rules/agencies/): Jackson County, Missouri and El Paso County, Texas, each
# with its own people in the demo registry and its own operator and auditor API tokens.
export CAREALERT_USERS_FILE="${CAREALERT_USERS_FILE:-$ROOT/deploy/local/users.yaml}"
export CAREALERT_API_TOKENS_FILE="${CAREALERT_API_TOKENS_FILE:-$ROOT/deploy/local/tokens.yaml}"
export CAREALERT_INGEST_PORT="${CAREALERT_INGEST_PORT:-8080}"
export CAREALERT_RULES_PORT="${CAREALERT_RULES_PORT:-8081}"
export CAREALERT_NOTIFY_PORT="${CAREALERT_NOTIFY_PORT:-8082}"
export CAREALERT_GATE_PORT="${CAREALERT_GATE_PORT:-8083}"
export CAREALERT_CONSOLE_PORT="${CAREALERT_CONSOLE_PORT:-8084}"
# The console's read model (docs/console.md): a SQLite file here; PostgreSQL in production.
export CAREALERT_DATABASE_URL="${CAREALERT_DATABASE_URL:-sqlite:///$RUN_DIR/console.db}"
# The console records acknowledgements and notes through notify's API.
export CAREALERT_NOTIFY_URL="${CAREALERT_NOTIFY_URL:-http://127.0.0.1:$CAREALERT_NOTIFY_PORT}"
export CAREALERT_RULES_DATA_DIR="${CAREALERT_RULES_DATA_DIR:-$RUN_DIR/rules}"
# Demo mode: the services accept the public demo secrets and API keys below only because
# CAREALERT_ENV=demo. Without it they refuse them (and any secret under 32 characters).
export CAREALERT_ENV="${CAREALERT_ENV:-demo}"
# Demo secrets: public, for a laptop only. Set your own in any real deployment.
export CAREALERT_ACK_SECRET="${CAREALERT_ACK_SECRET:-demo-ack-secret-not-for-production}"
export CAREALERT_WEBHOOK_SECRET="${CAREALERT_WEBHOOK_SECRET:-demo-webhook-secret}"
export CAREALERT_SMTP_PORT="${CAREALERT_SMTP_PORT:-2525}"
# The canary: notify posts a synthetic event of the reserved agency carealert-canary every
# minute and watches it come back (carealert_notify_canary_* metrics); it reaches nobody.
export CAREALERT_CANARY_INGEST_URL="${CAREALERT_CANARY_INGEST_URL:-http://127.0.0.1:$CAREALERT_INGEST_PORT}"
export CAREALERT_CANARY_API_KEY="${CAREALERT_CANARY_API_KEY:-demo-canary-not-a-secret}"
export CAREALERT_CANARY_INTERVAL_S="${CAREALERT_CANARY_INTERVAL_S:-60}"
SINK_HTTP_PORT="${SINK_HTTP_PORT:-8090}"
SINK_DIR="$RUN_DIR/sink"

# name:port:command — a service is started only if its command exists in this checkout.
SERVICES=(
  "sinks:$SINK_HTTP_PORT:sinks --smtp-port $CAREALERT_SMTP_PORT --http-port $SINK_HTTP_PORT --dir $SINK_DIR"
  "ingest:$CAREALERT_INGEST_PORT:ingest"
  "rules:$CAREALERT_RULES_PORT:rules"
  "notify:$CAREALERT_NOTIFY_PORT:notify"
  "gate:$CAREALERT_GATE_PORT:gate"
  "console:$CAREALERT_CONSOLE_PORT:console serve"
)

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

status() {
  local rc=0
  for spec in "kafka::" "${SERVICES[@]}"; do
    local name="${spec%%:*}"
    if [[ "$name" == kafka ]]; then
      if deploy/kafka/kafka.sh status; then echo "kafka    running"; else echo "kafka    stopped"; fi
    elif alive "$name"; then
      echo "$name   running (pid $(cat "$RUN_DIR/$name.pid"), log $RUN_DIR/$name.log)"
    else
      echo "$name   stopped"; rc=1
    fi
  done
  return $rc
}

wait_http() {
  local name="$1" url="$2" deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if ! alive "$name"; then
      echo "run.sh: $name exited during start-up; last lines of $RUN_DIR/$name.log:" >&2
      tail -n 20 "$RUN_DIR/$name.log" >&2
      exit 1
    fi
    if (( SECONDS > deadline )); then
      echo "run.sh: $name did not answer $url within 60s; see $RUN_DIR/$name.log" >&2
      exit 1
    fi
    sleep 0.3
  done
}

if [[ "${1:-}" == status ]]; then
  status
  exit $?
fi

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  deploy/kafka/kafka.sh start
  export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-9092}"
else
  echo "run.sh: using the broker at $KAFKA_BOOTSTRAP_SERVERS (nothing started for Kafka)"
fi

for spec in "${SERVICES[@]}"; do
  IFS=: read -r name port cmd <<<"$spec"
  if alive "$name"; then
    echo "run.sh: $name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    continue
  fi
  # Each service runs under supervise.sh, which starts it again if it exits (a stalled worker
  # exits on purpose) and writes a line saying so into its log.
  # shellcheck disable=SC2086
  nohup "$ROOT/deploy/local/supervise.sh" "$name" "$BIN/carealert" $cmd \
    >>"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
done
for spec in "${SERVICES[@]}"; do
  IFS=: read -r name port cmd <<<"$spec"
  wait_http "$name" "http://127.0.0.1:$port/healthz"
done

if [[ ! -f "$RUN_DIR/demo-fed" ]]; then
  # A small synthetic caseload per agency, once, so there is something to look at right away.
  "$BIN/carealert" simulate --children 40 --days 21 --seed 5 --agency mo-jackson --state MO \
    --caseworkers W-1,W-2 --supervisor S-1 \
    --post "http://127.0.0.1:$CAREALERT_INGEST_PORT" --api-key demo-not-a-secret \
  && "$BIN/carealert" simulate --children 20 --days 21 --seed 6 --agency tx-el-paso --state TX \
    --caseworkers W-1,W-7 --supervisor S-3 \
    --post "http://127.0.0.1:$CAREALERT_INGEST_PORT" --api-key other-demo-not-a-secret \
  && touch "$RUN_DIR/demo-fed"
fi

cat <<EOF2

carealert is running (stop it with: make stop)

  ingest    http://127.0.0.1:$CAREALERT_INGEST_PORT   (OpenAPI: /docs, /openapi.json; /metrics, /readyz)
  rules     http://127.0.0.1:$CAREALERT_RULES_PORT/metrics   (policy: rules/, check with .venv/bin/carealert policy test)
  notify    http://127.0.0.1:$CAREALERT_NOTIFY_PORT   (an agency's open escalations: GET /v1/escalations
                                      with 'Authorization: Bearer <its operator token>')
  delivered email     $SINK_DIR/mail/index.html   (open in a browser; SMTP sink on 127.0.0.1:$CAREALERT_SMTP_PORT)
  delivered webhooks  $SINK_DIR/webhooks/*.json   (webhook + SMS sink on 127.0.0.1:$SINK_HTTP_PORT)
  gate      http://127.0.0.1:$CAREALERT_GATE_PORT/metrics   (agencies' own input topics care.events.in.<agency_id> → care.events.v1)
  console   http://127.0.0.1:$CAREALERT_CONSOLE_PORT/   (sign in below; /metrics; read model .run/console.db unless CAREALERT_DATABASE_URL, docs/console.md)
  kafka     $KAFKA_BOOTSTRAP_SERVERS   (topics care.events.v1, care.events.dlq, care.escalations.v1, ...)
  logs      $RUN_DIR/*.log

Demo mode (CAREALERT_ENV=demo): public demo secrets and API keys are accepted; never expose
this stack. Two agencies, each seeing only its own children (docs/tenancy.md):

  agency       ingest API key            operator API token
  mo-jackson   demo-not-a-secret         demo-operator-mo-jackson-not-a-secret
  tx-el-paso   other-demo-not-a-secret   demo-operator-tx-el-paso-not-a-secret

  curl -s http://127.0.0.1:$CAREALERT_NOTIFY_PORT/v1/escalations \\
    -H 'Authorization: Bearer demo-operator-mo-jackson-not-a-secret'

Console logins (http://127.0.0.1:$CAREALERT_CONSOLE_PORT/, password demo-password-not-for-production):

  agency       staff id   role
  mo-jackson   W-1        caseworker     (S-1 supervisor, C-1 on call, A-1 auditor: reads only)
  tx-el-paso   W-1        caseworker     (a different person: ids are per agency)

Try it:
  curl -i -X POST http://127.0.0.1:$CAREALERT_INGEST_PORT/v1/events \\
    -H 'Authorization: Bearer demo-not-a-secret' -H 'Content-Type: application/json' \\
    -d @deploy/local/example-event.json

then, within a few seconds: ls $SINK_DIR/mail $SINK_DIR/webhooks, and the child on the console's Now page

On call at mo-jackson (docs/oncall.md): caseworkers W-1 and W-2 take weekdays 08:00-17:00 by
turns, C-1 and C-2 the nights and weekends a week each; a missing child's alert reaches whoever
is on call by SMS (in $SINK_DIR/webhooks/*-sms.json):
$(.venv/bin/carealert oncall who --agency mo-jackson 2>/dev/null | sed 's/^/  /')
  .venv/bin/carealert oncall show --agency mo-jackson --days 7
  .venv/bin/carealert silence add --agency mo-jackson --by O-1 --match rule_id=risk.tier-changed \\
    --for 1h --reason "risk review day"     # mutes tier changes; a duty is never hidden
EOF2
