#!/usr/bin/env bash
# Data-plane figures, side by side in one run under the same CPU pinning:
#   1. an authenticated, billed POST /v1/chat/completions forwarded by tollgated
#      to the simulated provider (test fixture) vs nginx proxying the same
#      upstream (proxy_pass with keepalive);
#   2. a refusal decided by tollgated (402 insufficient-funds) vs nginx
#      answering a static 402 body.
# The server under test runs on CPU 0; the upstream and wrk on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-32}
cargo build -q --release -p tollgate-gateway -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-dp.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_line() { for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

taskset -c 1 "$TARGET/release/sim-provider" >"$WORK/sim.out" 2>&1 & PIDS+=($!)
wait_line "$WORK/sim.out" "listening on"
SIM=$(sed -n 's/^sim-provider listening on http:\/\///p' "$WORK/sim.out")

printf 'upstream_url = "http://%s/v1"\nprice_per_request = "0.000001"\n' "$SIM" >"$WORK/gw.toml"
RUST_LOG=warn taskset -c 0 "$TARGET/release/tollgated" serve --data-dir "$WORK/gw" --listen 127.0.0.1:0 --config "$WORK/gw.toml" >"$WORK/gw.out" 2>"$WORK/gw.log" & PIDS+=($!)
wait_line "$WORK/gw.out" "listening on"
GW=$(sed -n 's/^tollgated listening on //p' "$WORK/gw.out")
ADMIN=$(cat "$WORK/gw/bootstrap-admin-token")
api() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -H "Idempotency-Key: $RANDOM$RANDOM$RANDOM" -X "$1" -d "${3:-}" "$GW$2"; }
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
TEAM=$(api POST /admin/v1/teams '{"name":"bench"}' | json '["id"]')
PLAN=$(api POST /admin/v1/plans '{"name":"bench","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"]}' | json '["id"]')
consumer_key() {
  local c k
  c=$(api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"$1\"}" | json '["id"]')
  k=$(api POST "/admin/v1/consumers/$c/keys" '{"name":"bench"}' | json '["secret"]')
  api POST /admin/v1/subscriptions "{\"consumer_id\":\"$c\",\"plan_id\":\"$PLAN\"}" >/dev/null
  [ -n "${2:-}" ] && api POST "/admin/v1/consumers/$c/wallets/USD/entries" "{\"kind\":\"top_up\",\"amount\":\"$2\"}" >/dev/null
  echo "$k"
}
RICH=$(consumer_key rich 1000000)
BROKE=$(consumer_key broke)

cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity 01;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream sim { server $SIM; keepalive 64; }
  server {
    listen 127.0.0.1:0;
    listen 127.0.0.1:18402;
    location /v1/ { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /static402 { default_type application/problem+json; return 402 '{"type":"about:blank","title":"Payment Required","status":402}'; }
  }
}
NGINX
sed -i '/listen 127.0.0.1:0;/d' "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK" && PIDS+=("$(cat "$WORK/nginx.pid" 2>/dev/null || true)")
sleep 0.3
NGINX_URL=http://127.0.0.1:18402

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"sim-small","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA

run() { # label url key
  local out
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$WORK/post.lua" ${3:+-H "Authorization: Bearer $3"} "$2" >/dev/null
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" ${3:+-H "Authorization: Bearer $3"} "$2")
  echo "$out" >&2
  local rps p50 p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
  echo "$rps" >"$WORK/last"
}

echo "| Request (c=$CONNS, $DURATION, server on CPU 0, upstream and wrk on CPU 1) | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
perf record -F 2000 -g -p $(pgrep -f "release/tollgated serve") -o /tmp/perf-fwd.data -- sleep 8 & run "gw fwd" "$GW/v1/chat/completions" "$RICH"; wait; GW_OK=1
run "nginx: proxy_pass to the same upstream (keepalive)" "$NGINX_URL/v1/chat/completions"; NG_OK=$(cat "$WORK/last")
perf record -F 2000 -g -p $(pgrep -f "release/tollgated serve") -o /tmp/perf-402.data -- sleep 8 & run "gw 402" "$GW/v1/chat/completions" "$BROKE"; wait; GW_402=1
run "nginx: static 402 body" "$NGINX_URL/static402"; NG_402=$(cat "$WORK/last")
python3 - "$GW_OK" "$NG_OK" "$GW_402" "$NG_402" <<'PY'
import sys
gw_ok, ng_ok, gw_402, ng_402 = map(float, sys.argv[1:])
print(f"\nforwarding: tollgated / nginx = {gw_ok / ng_ok:.2f} (goal >= 0.8)")
print(f"refusal:    tollgated / nginx = {gw_402 / ng_402:.2f} (goal >= 0.7)")
PY
