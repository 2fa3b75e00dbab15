#!/usr/bin/env bash
# The data plane on each store, side by side in one run: one tollgated on the
# embedded SQLite store and one on PostgreSQL (a throwaway server), the same
# binary, both on CPU 0, measured in turns; nginx is measured too, as the
# reference for the tails. For each: an authenticated, billed chat
# completion forwarded to the simulated provider (a test fixture), and a 402
# insufficient-funds refusal — req/s, p50, p99 and the server's CPU per
# request. The database stays off the hot path: the goal is the PostgreSQL
# node at ≥ 0.9× the SQLite node on both, and p99 within 2× nginx's.
# The upstream, PostgreSQL and wrk run on CPU 1.
#   BENCH_GATEWAY=path BENCH_ROUNDS=5 BENCH_DURATION=5s scripts/bench-stores.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
TARGET=$CARGO_TARGET_DIR
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-5}
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
ROOT=$(mktemp -d /tmp/tollgate-bench-stores.XXXXXX)
WORK=$ROOT
source scripts/lib/gateway-fixture.sh
source scripts/lib/postgres.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${PIDS[@]}" 2>/dev/null || true; rm -rf "$ROOT"; }

bench_database "bench_stores_$$"
DATABASE_URL=$BENCH_DATABASE_URL
# The database's processes share CPU 1 with the upstream and wrk (backends
# forked later keep the postmaster's affinity).
for pid in $(pgrep -x postgres); do taskset -a -p 2 "$pid" >/dev/null; done

start_sim taskset -c 1
# gateway NAME [env…]: a gateway in its own scratch dir; prints "PID URL RICH BROKE".
gateway() {
  local name=$1
  shift
  WORK=$ROOT/$name
  mkdir -p "$WORK"
  start_gateway env "$@" taskset -c 0 "$GATEWAY" >&2
  echo "$GW_PID $GW $(consumer_key rich 1000000) $(consumer_key broke)"
}
gateway sqlite >"$ROOT/sqlite.env"
gateway postgres TOLLGATE_DATABASE_URL="$DATABASE_URL" >"$ROOT/postgres.env"
read -r PID_SQ URL_SQ RICH_SQ BROKE_SQ <"$ROOT/sqlite.env"
read -r PID_PG URL_PG RICH_PG BROKE_PG <"$ROOT/postgres.env"
WORK=$ROOT

NGINX_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$ROOT/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity 01;
pid $ROOT/nginx.pid;
error_log $ROOT/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log $ROOT/nginx-access.log combined buffer=64k flush=1s;
  upstream sim { server $SIM; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /v1/ { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /static402 { default_type application/problem+json; return 402 '{"type":"about:blank","title":"Payment Required","status":402}'; }
  }
}
NGINX
nginx -c "$ROOT/nginx.conf" -p "$ROOT"
sleep 0.3
PIDS+=("$(cat "$ROOT/nginx.pid")")
NGINX_URL=http://127.0.0.1:$NGINX_PORT
NGINX_WORKER=$(pgrep -P "$(cat "$ROOT/nginx.pid")" | head -1)
chat_script "$ROOT/post.lua"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # key pid url [api-key]
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s "$ROOT/post.lua" ${4:+-H "Authorization: Bearer $4"} "$3" >/dev/null
  local before out requests ticks
  before=$(cpu_ticks "$2")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/post.lua" ${4:+-H "Authorization: Bearer $4"} "$3")
  ticks=$(( $(cpu_ticks "$2") - before ))
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(python3 -c "print(f'{$ticks * 1e6 / $(getconf CLK_TCK) / $requests:.1f}')")" >>"$ROOT/results"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  # The order turns each round, so a drift within a round favours none.
  order=(sq pg ng)
  [ $((round % 3)) = 2 ] && order=(pg ng sq)
  [ $((round % 3)) = 0 ] && order=(ng sq pg)
  for who in "${order[@]}"; do
    case $who in
      sq) run sq_ok "$PID_SQ" "$URL_SQ/v1/chat/completions" "$RICH_SQ"
          run sq_402 "$PID_SQ" "$URL_SQ/v1/chat/completions" "$BROKE_SQ" ;;
      pg) run pg_ok "$PID_PG" "$URL_PG/v1/chat/completions" "$RICH_PG"
          run pg_402 "$PID_PG" "$URL_PG/v1/chat/completions" "$BROKE_PG" ;;
      ng) run ng_ok "$NGINX_WORKER" "$NGINX_URL/v1/chat/completions"
          run ng_402 "$NGINX_WORKER" "$NGINX_URL/static402" ;;
    esac
  done
done
echo "tollgated: $GATEWAY"
python3 - "$ROOT/results" "$CONNS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, conns, duration, rounds = sys.argv[1:]
labels = {
    "sq_ok": "tollgated on SQLite: billed chat completion forwarded",
    "pg_ok": "tollgated on PostgreSQL: billed chat completion forwarded",
    "ng_ok": "nginx: proxy_pass to the same upstream",
    "sq_402": "tollgated on SQLite: 402 insufficient-funds",
    "pg_402": "tollgated on PostgreSQL: 402 insufficient-funds",
    "ng_402": "nginx: static 402",
}
rows = {}
for line in open(path):
    key, rps, p50, p99, cpu = line.rstrip("\n").split("\t")
    rows.setdefault(key, []).append((float(rps), p50, p99, float(cpu)))
def ms(text):
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for unit in ("us", "ms", "s"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)
print(f"| Request (c={conns}, {duration} x {rounds} rounds, servers on CPU 0; upstream, PostgreSQL and wrk on CPU 1) "
      "| req/s (median) | req/s per round | p50 (median) | p99 (median) | server CPU per request |")
print("|---|---|---|---|---|---|")
for key in labels:
    runs = rows[key]
    mid = sorted(runs)[len(runs) // 2]
    p50 = statistics.median(ms(r[1]) for r in runs)
    p99 = statistics.median(ms(r[2]) for r in runs)
    per_round = " / ".join(f"{r[0]:,.0f}" for r in runs)
    print(f"| {labels[key]} | {mid[0]:,.0f} | {per_round} | {p50:.2f} ms | {p99:.2f} ms | {statistics.median(r[3] for r in runs):.1f} µs |")
print()
def ratio(a, b, i=0, f=lambda x: x):
    rs = sorted(f(x[i]) / f(y[i]) for x, y in zip(rows[a], rows[b]))
    return f"{statistics.median(rs):.2f} (rounds: {' / '.join(f'{r:.2f}' for r in rs)})"
print(f"forwarding: PostgreSQL / SQLite req/s = {ratio('pg_ok', 'sq_ok')}, goal >= 0.9")
print(f"refusal:    PostgreSQL / SQLite req/s = {ratio('pg_402', 'sq_402')}, goal >= 0.9")
for store in ("sq", "pg"):
    name = {"sq": "SQLite", "pg": "PostgreSQL"}[store]
    print(f"p99 {name} / nginx: forwarding {ratio(store + '_ok', 'ng_ok', 2, ms)}, refusal {ratio(store + '_402', 'ng_402', 2, ms)}; goal <= 2")
PY
