#!/usr/bin/env bash
# Two tollgated nodes on one PostgreSQL (a throwaway server) behind nginx, as
# the deployment guide runs them, against one node behind the same nginx:
# total req/s of billed chat completions forwarded to the simulated provider
# (a test fixture), then the money check under that load — every call the
# call log says was served is charged exactly once (the wallet's usage in
# micro-units = served calls, at 0.000001 a call) and the ledger sums to the
# balance. On this 2-core machine the nodes, nginx, PostgreSQL, the upstream
# and wrk share both cores: the figure is what two nodes add here, not what
# two machines would.
#   BENCH_GATEWAY=path BENCH_ROUNDS=3 BENCH_DURATION=5s scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
TARGET=$CARGO_TARGET_DIR
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-cluster.XXXXXX)
source scripts/lib/gateway-fixture.sh
source scripts/lib/postgres.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"; }

bench_database "bench_cluster_$$"
export TOLLGATE_DATABASE_URL=$BENCH_DATABASE_URL

start_sim
start_gateway taskset -c 0 "$GATEWAY"
URL_A=$GW
# The second node: the same database, settings and encryption key.
mkdir -p "$WORK/b"
cp "$WORK/gw/encryption.key" "$WORK/b/"
RUST_LOG=warn taskset -c 1 "$GATEWAY" serve --data-dir "$WORK/b" --listen 127.0.0.1:0 --config "$WORK/gw.toml" \
  >"$WORK/b.out" 2>"$WORK/b.log" &
PIDS+=($!)
wait_line "$WORK/b.out" "listening on"
URL_B=$(sed -n 's/^tollgated listening on //p' "$WORK/b.out")
CONSUMER=$(api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"load\"}" | json '["id"]')
KEY=$(api POST "/admin/v1/consumers/$CONSUMER/keys" '{"name":"bench"}' | json '["secret"]')
api POST /admin/v1/subscriptions "{\"consumer_id\":\"$CONSUMER\",\"plan_id\":\"$PLAN\"}" >/dev/null
api POST "/admin/v1/consumers/$CONSUMER/wallets/USD/entries" '{"kind":"top_up","amount":"1000"}' >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ONE=$(free_port) TWO=$(free_port)
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream one { server ${URL_A#http://} max_fails=0; keepalive 64; }
  upstream two { server ${URL_A#http://} max_fails=0; server ${URL_B#http://} max_fails=0; keepalive 64; }
  server {
    listen 127.0.0.1:$ONE;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$TWO;
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.3
PIDS+=("$(cat "$WORK/nginx.pid")")
chat_script "$WORK/post.lua"

SERVED_BY_WRK=0
run() { # key url
  wrk -t2 -c"$CONNS" -d1s -s "$WORK/post.lua" -H "Authorization: Bearer $KEY" "$2" >/dev/null
  local out
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" -H "Authorization: Bearer $KEY" "$2")
  printf '%s\t%s\t%s\t%s\n' "$1" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF}')" >>"$WORK/results"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  if [ $((round % 2)) = 1 ]; then run one http://127.0.0.1:$ONE/v1/chat/completions; run two http://127.0.0.1:$TWO/v1/chat/completions
  else run two http://127.0.0.1:$TWO/v1/chat/completions; run one http://127.0.0.1:$ONE/v1/chat/completions; fi
done

# The money check: every node's last usage window stored, then the ledger
# against the call log.
sleep 1
python3 - "$URL_A" "$URL_B" "$ADMIN" "$CONSUMER" <<'PY'
import json, sys, urllib.request
a, b, token, consumer = sys.argv[1:]
def get(base, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return r.read().decode()
def micros(text):
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-").partition(".")
    return sign * (int(whole) * 1_000_000 + int((frac + "000000")[:6]))
served = 0
after = 0
while True:
    page = get(a, f"/admin/v1/logs/export?after={after}&limit=10000").splitlines()
    for line in page:
        record = json.loads(line)
        after = record["seq"]
        if record.get("consumer_id") == consumer and record["status"] == 200:
            served += 1
    if len(page) < 10000:
        break
entries, cursor = [], None
while True:
    path = f"/admin/v1/consumers/{consumer}/wallets/USD/entries?limit=200" + (f"&cursor={cursor}" if cursor else "")
    page = json.loads(get(a, path))
    entries += page["items"]
    cursor = page.get("next_cursor")
    if not cursor:
        break
balance = micros(json.loads(get(a, f"/admin/v1/consumers/{consumer}/wallets"))[0]["balance"])
total = sum(micros(e["amount"]) for e in entries)
top_ups = sum(micros(e["amount"]) for e in entries if e["kind"] == "top_up")
usage = -sum(micros(e["amount"]) for e in entries if e["kind"] == "usage")
export_b = get(b, "/admin/v1/logs/export?limit=5")
assert export_b == get(a, "/admin/v1/logs/export?limit=5"), "the nodes export different logs"
print(f"money check: {served:,} calls served (call log), usage charged {usage:,} µ$ at 1 µ$ a call, "
      f"balance {balance:,} µ$, ledger sum {total:,} µ$, top-ups {top_ups:,} µ$")
assert total == balance, "the ledger does not sum to the balance"
assert top_ups == balance + usage, "top-ups != balance + usage"
assert usage == served, f"{usage} charged for {served} served calls"
print("money check: exact (every served call charged once; the ledger sums to the balance)")
PY

echo "tollgated: $GATEWAY"
python3 - "$WORK/results" "$CONNS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, conns, duration, rounds = sys.argv[1:]
rows = {}
for line in open(path):
    key, rps, p99, non2xx = line.rstrip("\n").split("\t")
    rows.setdefault(key, []).append((float(rps), p99, non2xx or "0"))
labels = {"one": "one node behind nginx", "two": "two nodes behind nginx (round robin)"}
print(f"| Billed chat completions through nginx (c={conns}, {duration} x {rounds} rounds, wrk -t2; everything on 2 cores) | req/s (median) | req/s per round | p99 (median run) | non-2xx |")
print("|---|---|---|---|---|")
for key, label in labels.items():
    runs = rows[key]
    mid = sorted(runs)[len(runs) // 2]
    print(f"| {label} | {mid[0]:,.0f} | {' / '.join(f'{r[0]:,.0f}' for r in runs)} | {mid[1]} | {mid[2]} |")
ratios = sorted(x[0] / y[0] for x, y in zip(rows["two"], rows["one"]))
print(f"\ntwo nodes / one node = {statistics.median(ratios):.2f} (rounds: {' / '.join(f'{r:.2f}' for r in ratios)})")
PY
