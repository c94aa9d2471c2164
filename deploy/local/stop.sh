#!/usr/bin/env bash
# Stop everything deploy/local/run.sh started (services first, then the broker it started).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$ROOT/.run"
for pid_file in "$RUN_DIR"/*.pid; do
  [[ -e "$pid_file" ]] || continue
  [[ "$(basename "$pid_file")" == kafka.pid ]] && continue
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    # supervise.sh stops its service and then itself; whatever is left after 20 s is killed.
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  echo "stopped $(basename "$pid_file" .pid)"
done
"$ROOT/deploy/kafka/kafka.sh" stop && echo "stopped kafka"
