#!/usr/bin/env bash
# bench/chaos.sh [N]: run the chaos test (tests/e2e/test_chaos.py) N times in a row (default 20),
# each run with its own service logs under bench/results/chaos/run-K/; stop at the first failure.
# `make test` runs it once; this loop is how "it does not flake" is measured.
set -uo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
out="${CHAOS_OUT:-bench/results/chaos}"
mkdir -p "$out"
make -s setup >/dev/null
passed=0
ran=0
for i in $(seq 1 "$n"); do
  ran=$i
  dir="$out/run-$i"
  rm -rf "$dir" && mkdir -p "$dir"
  started=$SECONDS
  if CAREALERT_TEST_LOGS="$dir" .venv/bin/pytest -q -p no:cacheprovider tests/e2e/test_chaos.py \
      >"$dir/pytest.out" 2>&1; then
    passed=$((passed + 1))
    echo "run $i: passed in $((SECONDS - started))s ($(cat "$dir/chaos-summary.txt"))"
  else
    echo "run $i: FAILED after $((SECONDS - started))s; logs in $dir"
    tail -n 5 "$dir/pytest.out"
    break
  fi
done
echo "chaos: $passed passed, $((ran - passed)) failed"
[[ $passed -eq $n ]]
