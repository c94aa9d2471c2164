#!/usr/bin/env bash
# supervise.sh NAME COMMAND...: run COMMAND and start it again whenever it exits (a worker exits
# on purpose when its stall watch sees a partition stop moving), saying so in its log. TERM or
# INT stops the command and then this loop. Used by run.sh; k8s and compose restart on their own.
set -uo pipefail
name="$1"; shift
child=""
stopping=0
quick=0  # exits in a row within 10 s of a start: a broken configuration, not a stall
stop() {
  stopping=1
  [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null
}
trap stop TERM INT
while true; do
  started=$SECONDS
  "$@" &
  child=$!
  # `wait` returns early when a signal arrives; wait again for the child to finish.
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  (( stopping )) && exit 0
  if (( SECONDS - started < 10 )); then quick=$((quick + 1)); else quick=0; fi
  if (( quick >= 5 )); then
    echo "{\"ts\": \"$(date -u +%Y-%m-%dT%H:%M:%S.000+00:00)\", \"level\": \"error\", \"logger\": \"supervise\", \"service\": \"$name\", \"msg\": \"$name exited 5 times within 10s of starting (status $rc); giving up\"}"
    exit "$rc"
  fi
  echo "{\"ts\": \"$(date -u +%Y-%m-%dT%H:%M:%S.000+00:00)\", \"level\": \"warning\", \"logger\": \"supervise\", \"service\": \"$name\", \"msg\": \"$name exited with status $rc; starting it again in 2s\"}"
  sleep 2 &
  wait $! || true
  (( stopping )) && exit 0
done
