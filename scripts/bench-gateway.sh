#!/usr/bin/env bash
# Gateway figures: an authenticated `GET /admin/v1/teams` page (50 teams) at
# concurrency 64 on loopback, with wrk. The gateway is pinned to CPU 0 and wrk
# to CPU 1 so the two do not fight over one core. Prints a markdown row.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${BENCH_DURATION:-15s}
# The gateway as deployed (`make server`), unless BENCH_GATEWAY names another build.
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
DIR=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
OUT="$DIR/out"
RUST_LOG=warn taskset -c 0 "$GATEWAY" serve --data-dir "$DIR/data" --listen 127.0.0.1:0 >"$OUT" 2>"$DIR/log" &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$OUT" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^tollgated listening on //p' "$OUT")
TOKEN=$(cat "$DIR/data/bootstrap-admin-token")
for i in $(seq 1 50); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"name\": \"team $i\", \"description\": \"benchmark team number $i\"}" "$BASE/admin/v1/teams"
done
URL="$BASE/admin/v1/teams?limit=50"
# Warm up, then measure.
taskset -c 1 wrk -t1 -c64 -d3s -H "Authorization: Bearer $TOKEN" "$URL" >/dev/null
RESULT=$(taskset -c 1 wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$URL")
echo "$RESULT" >&2
RPS=$(echo "$RESULT" | awk '/Requests\/sec/ {print $2}')
P50=$(echo "$RESULT" | awk '$1 == "50%" {print $2}')
P99=$(echo "$RESULT" | awk '$1 == "99%" {print $2}')
NON2XX=$(echo "$RESULT" | awk '/Non-2xx/ {print $NF}')
echo "| GET /admin/v1/teams?limit=50 (authenticated, 50 rows), c=64 | ${RPS} req/s | p50 ${P50} | p99 ${P99} | non-2xx: ${NON2XX:-0} |"
