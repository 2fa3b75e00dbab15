#!/usr/bin/env bash
# Two builds of tollgated side by side: what a build change is worth in req/s,
# p99 latency and server CPU per request.
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
# One gateway per scratch dir; prints "PID URL KEY" for the mode's consumer.
gateway() { # name binary
  WORK=$ROOT/$1
  mkdir -p "$WORK"
  start_gateway taskset -c 0 "$2" >&2
  if [ "$MODE" = forward ]; then echo "$GW_PID $GW $(consumer_key rich 100000000)"; else echo "$GW_PID $GW $(consumer_key broke)"; fi
}
gateway a "$A" >"$ROOT/a.env"
gateway b "$B" >"$ROOT/b.env"
read -r PID_A URL_A KEY_A <"$ROOT/a.env"
read -r PID_B URL_B KEY_B <"$ROOT/b.env"
chat_script "$ROOT/post.lua"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# measure PID URL KEY SECONDS: prints "req/s p99-ms cpu-µs-per-request".
measure() {
  local before out
  before=$(cpu_ticks "$1")
  out=$(taskset -c 1 wrk -t1 -c32 -d"$4"s --latency -s "$ROOT/post.lua" -H "Authorization: Bearer $3" "$2/v1/chat/completions")
  echo "$out" | awk -v ticks=$(($(cpu_ticks "$1") - before)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ {rps = $2}
    /requests in/ {n = $1}
    $1 == "99%" {v = $2; m = 1; if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /s$/) m = 1000; sub(/[a-z]+$/, "", v); p99 = v * m}
    END {printf "%s %.3f %.2f\n", rps, p99, ticks * 1e6 / hz / n}'
}
measure "$PID_A" "$URL_A" "$KEY_A" 1 >/dev/null
measure "$PID_B" "$URL_B" "$KEY_B" 1 >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    a=$(measure "$PID_A" "$URL_A" "$KEY_A" "$SECS"); b=$(measure "$PID_B" "$URL_B" "$KEY_B" "$SECS")
  else
    b=$(measure "$PID_B" "$URL_B" "$KEY_B" "$SECS"); a=$(measure "$PID_A" "$URL_A" "$KEY_A" "$SECS")
  fi
  echo "round $round/$ROUNDS: A $a, B $b (req/s, p99 ms, CPU µs per request)" >&2
  echo "$a $b" >>"$ROOT/results"
done
python3 - "$ROOT/results" "$A" "$B" "$MODE" <<'PY'
import statistics, sys
path, a, b, mode = sys.argv[1:]
rows = [tuple(map(float, line.split())) for line in open(path)]
med = statistics.median
for name, path_, off in (("A", a, 0), ("B", b, 3)):
    print(f"{mode}: {name} = {path_}: {med(r[off] for r in rows):,.0f} req/s, "
          f"p99 {med(r[off + 1] for r in rows):.2f} ms, {med(r[off + 2] for r in rows):.1f} µs CPU per request (medians)")
def ratio(i):
    rs = sorted(r[3 + i] / r[i] for r in rows)
    return f"{med(rs):.2f} (rounds: {' / '.join(f'{x:.2f}' for x in rs)})"
print(f"{mode}: B / A req/s = {ratio(0)}")
print(f"{mode}: B / A p99 = {ratio(1)}")
print(f"{mode}: B / A CPU per request = {ratio(2)}")
PY
