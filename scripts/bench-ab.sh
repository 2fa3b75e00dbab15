#!/usr/bin/env bash
# Two builds of tollgated side by side: what a build change is worth in req/s.
#   usage: scripts/bench-ab.sh TOLLGATED-A TOLLGATED-B [ROUNDS]
# Both serve at once, each with its own store and consumers; each round
# measures A then B (B first in even rounds), so the machine's drift cancels
# out of the per-round ratio, and the median of those ratios is the figure.
# BENCH_MODE=refusal (402 insufficient funds; the default) or forward (a
# billed call to the simulated provider, a test fixture). The gateways run
# on CPU 0, the provider and wrk on CPU 1; BENCH_SECONDS per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
A=$1 B=$2 ROUNDS=${3:-10}
MODE=${BENCH_MODE:-refusal}
SECS=${BENCH_SECONDS:-3}
cargo build -q --release -p tollgate-sim-provider
ROOT=$(mktemp -d /tmp/tollgate-bench-ab.XXXXXX)
WORK=$ROOT
source scripts/lib/gateway-fixture.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$ROOT"; }
trap cleanup EXIT

start_sim taskset -c 1
# One gateway per scratch dir; prints "URL KEY" for the mode's consumer.
gateway() { # name binary
  WORK=$ROOT/$1
  mkdir -p "$WORK"
  start_gateway taskset -c 0 "$2" >&2
  if [ "$MODE" = forward ]; then echo "$GW $(consumer_key rich 100000000)"; else echo "$GW $(consumer_key broke)"; fi
}
gateway a "$A" >"$ROOT/a.env"
gateway b "$B" >"$ROOT/b.env"
read -r URL_A KEY_A <"$ROOT/a.env"
read -r URL_B KEY_B <"$ROOT/b.env"
chat_script "$ROOT/post.lua"
rps() { # url key seconds
  taskset -c 1 wrk -t1 -c32 -d"$3"s -s "$ROOT/post.lua" -H "Authorization: Bearer $2" "$1/v1/chat/completions" |
    awk '/Requests\/sec/ {print $2}'
}
rps "$URL_A" "$KEY_A" 1 >/dev/null
rps "$URL_B" "$KEY_B" 1 >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    a=$(rps "$URL_A" "$KEY_A" "$SECS"); b=$(rps "$URL_B" "$KEY_B" "$SECS")
  else
    b=$(rps "$URL_B" "$KEY_B" "$SECS"); a=$(rps "$URL_A" "$KEY_A" "$SECS")
  fi
  echo "round $round/$ROUNDS: A $a req/s, B $b req/s" >&2
  echo "$a $b" >>"$ROOT/results"
done
python3 - "$ROOT/results" "$A" "$B" "$MODE" <<'PY'
import statistics, sys
path, a, b, mode = sys.argv[1:]
rows = [tuple(map(float, line.split())) for line in open(path)]
ratios = sorted(y / x for x, y in rows)
print(f"{mode}: A = {a}: {statistics.median(x for x, _ in rows):,.0f} req/s (median)")
print(f"{mode}: B = {b}: {statistics.median(y for _, y in rows):,.0f} req/s (median)")
print(f"{mode}: B / A = {statistics.median(ratios):.2f} (rounds: {' / '.join(f'{r:.2f}' for r in ratios)})")
PY
