#!/usr/bin/env bash
# Streaming overhead: time to first token of a streamed chat completion through
# tollgated (authenticated, billed, routed to a provider's key pool) minus the
# same request sent directly to the simulated provider (test fixture). The
# two are measured in alternation, request by request, over keep-alive
# connections; the gateway runs on CPU 0, the simulator and the client on
# CPU 1. "First token" is the first event carrying content.
# BENCH_REQUESTS (default 2000) sets how many of each.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
REQUESTS=${BENCH_REQUESTS:-2000}
# The gateway as deployed (`make server`), unless BENCH_GATEWAY names another build.
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-stream.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_line() { for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2" >&2; exit 1; }

taskset -c 1 "$TARGET/release/sim-provider" >"$WORK/sim.out" 2>&1 & PIDS+=($!)
wait_line "$WORK/sim.out" "listening on"
SIM=$(sed -n 's/^sim-provider listening on //p' "$WORK/sim.out")
RUST_LOG=warn taskset -c 0 "$GATEWAY" serve --data-dir "$WORK/gw" --listen 127.0.0.1:0 >"$WORK/gw.out" 2>"$WORK/gw.log" & PIDS+=($!)
wait_line "$WORK/gw.out" "listening on"
GW=$(sed -n 's/^tollgated listening on //p' "$WORK/gw.out")

taskset -c 1 python3 - "$GW" "$SIM" "$(cat "$WORK/gw/bootstrap-admin-token")" "$REQUESTS" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse, uuid

gw, sim, token, requests = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def admin(method, path, body=None):
    u = urllib.parse.urlparse(gw)
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
    r = c.getresponse()
    data = r.read()
    assert r.status < 300, (path, r.status, data)
    return json.loads(data or b"null")

provider = admin("POST", "/admin/v1/providers", {"name": "Sim", "kind": "openai-compatible", "base_url": f"{sim}/v1",
    "models": [{"name": "sim-small", "input_price": "0.10", "output_price": "0.20"}]})
admin("POST", f"/admin/v1/providers/{provider['id']}/keys", {"label": "bench", "secret": "sim-key-bench-0001"})
team = admin("POST", "/admin/v1/teams", {"name": "bench"})
consumer = admin("POST", "/admin/v1/consumers", {"team_id": team["id"], "name": "bench"})
key = admin("POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "bench"})["secret"]
plan = admin("POST", "/admin/v1/plans", {"name": "bench", "currency": "USD", "price": "0", "period": "month",
    "overage": "charge_wallet", "apis": ["chat"]})
admin("POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
admin("POST", f"/admin/v1/consumers/{consumer['id']}/wallets/USD/entries", {"kind": "top_up", "amount": "1000000"})

body = json.dumps({"model": "sim-small", "stream": True, "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hello there general kenobi"}]})

def connection(base):
    u = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(u.hostname, u.port)

def first_token(conn, headers):
    """Seconds from sending the request to the first event with content; reads the rest."""
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, headers)
    r = conn.getresponse()
    assert r.status == 200, r.status
    ttft = None
    for line in r:
        if ttft is None and line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            ttft = time.perf_counter() - start
    assert ttft is not None
    return ttft

through = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
direct = {"Authorization": "Bearer sim-key-bench-0001", "Content-Type": "application/json"}
g, d = connection(gw), connection(sim)
for _ in range(100):  # warm up both paths
    first_token(g, through), first_token(d, direct)
gateway, upstream = [], []
for _ in range(requests):
    gateway.append(first_token(g, through))
    upstream.append(first_token(d, direct))

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1e6

print(f"| Time to first token ({requests} streamed requests each, alternating; gateway on CPU 0, simulator and client on CPU 1) | p50 | p99 |")
print("|---|---|---|")
print(f"| directly from the simulated provider | {pct(upstream, 50):.0f} µs | {pct(upstream, 99):.0f} µs |")
print(f"| through tollgated (key check, subscription, reservation, key pool) | {pct(gateway, 50):.0f} µs | {pct(gateway, 99):.0f} µs |")
diffs = [a - b for a, b in zip(gateway, upstream)]
print(f"| overhead: through minus direct, per pair | {pct(diffs, 50):.0f} µs | {pct(diffs, 99):.0f} µs |")
PY
