#!/usr/bin/env bash
# Instructions the gateway executes in user space per refusal (402
# insufficient-funds), or with BENCH_MODE=forward per billed call forwarded
# to the simulated provider (test fixture), counted by valgrind's callgrind
# while wrk sends calls for a few seconds. Unlike req/s on a shared machine, the count barely
# moves between runs, so it shows what a code change saves. It leaves out
# the kernel (send/recv), and under valgrind sha256 runs without the CPU's
# SHA instructions, so the key digest is reported apart.
# Usage: scripts/bench-instructions.sh [callgrind output file]
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
# The gateway as deployed (`make server`): the `server` profile.
PROFILE=${BENCH_PROFILE:-server}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  { echo "bench-instructions needs valgrind (apt-get install valgrind)" >&2; exit 1; }
MODE=${BENCH_MODE:-refusal}
cargo build -q --profile "$PROFILE" -p tollgate-gateway
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-instr.XXXXXX)
OUT=${1:-$WORK/callgrind.out}
GW_PID= SIM_PID=
cleanup() { for p in $GW_PID $SIM_PID; do kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

UPSTREAM=127.0.0.1:9
if [ "$MODE" = forward ]; then
  "$TARGET/release/sim-provider" >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
  UPSTREAM=$(sed -n 's/^sim-provider listening on http:\/\///p' "$WORK/sim.out")
fi
printf 'upstream_url = "http://%s/v1"\nprice_per_request = "0.000001"\n' "$UPSTREAM" >"$WORK/gw.toml"
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
  "$TARGET/$PROFILE/tollgated" serve --data-dir "$WORK/gw" --listen 127.0.0.1:0 --config "$WORK/gw.toml" \
  >"$WORK/gw.out" 2>"$WORK/gw.log" &
GW_PID=$!
for _ in $(seq 1 200); do grep -q "listening on" "$WORK/gw.out" 2>/dev/null && break; sleep 0.2; done
GW=$(sed -n 's/^tollgated listening on //p' "$WORK/gw.out")
[ -n "$GW" ] || { echo "the gateway did not start" >&2; exit 1; }
ADMIN=$(cat "$WORK/gw/bootstrap-admin-token")
api() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -H "Idempotency-Key: $RANDOM$RANDOM$RANDOM" -X "$1" -d "${3:-}" "$GW$2"; }
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
TEAM=$(api POST /admin/v1/teams '{"name":"bench"}' | json '["id"]')
PLAN=$(api POST /admin/v1/plans '{"name":"bench","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"]}' | json '["id"]')
CONSUMER=$(api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"broke\"}" | json '["id"]')
KEY=$(api POST "/admin/v1/consumers/$CONSUMER/keys" '{"name":"bench"}' | json '["secret"]')
api POST /admin/v1/subscriptions "{\"consumer_id\":\"$CONSUMER\",\"plan_id\":\"$PLAN\"}" >/dev/null
[ "$MODE" = forward ] && api POST "/admin/v1/consumers/$CONSUMER/wallets/USD/entries" '{"kind":"top_up","amount":"1000000"}' >/dev/null
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"sim-small","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA
calls() { wrk -t1 -c8 -d"$1" -s "$WORK/post.lua" -H "Authorization: Bearer $KEY" "$GW/v1/chat/completions"; }
calls 2s >/dev/null # warm the caches before counting
callgrind_control -i on "$GW_PID" >/dev/null 2>&1
REQUESTS=$(calls 4s | awk '/requests in/ {print $1}')
callgrind_control -i off "$GW_PID" >/dev/null 2>&1
callgrind_control -d "$GW_PID" >/dev/null 2>&1
sleep 1
python3 - "$REQUESTS" "$OUT".* <<'PY'
import subprocess, sys
requests, files = int(sys.argv[1]), sys.argv[2:]
def inclusive(name):
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", *files], capture_output=True, text=True).stdout
    for line in text.splitlines():
        if name in line:
            return int(line.split()[0].replace(",", ""))
    return 0
total = inclusive("PROGRAM TOTALS")
digest = inclusive("tollgate_gateway::auth::token_digest")
print(f"requests counted: {requests:,}")
print(f"user-space instructions per call: {total // requests:,} "
      f"({(total - digest) // requests:,} without the key digest, which runs without SHA-NI under valgrind)")
for name, label in [("hyper::proto::h1::io::Buffered<T,B>::parse", "hyper: request head parsing"),
                    ("tollgate_gateway::dataplane::chat::handle", "gateway: authenticate (with the key digest), decide, reserve, refuse"),
                    ("tollgate_gateway::dataplane::chat::parse_request", "  of which the request body (JSON)"),
                    ("tollgate_gateway::dataplane::chat::forward", "gateway: forwarding and settling (forward mode)"),
                    ("tollgate_gateway::dataplane::Call::finish", "gateway: the answer's headers (and a refusal's body)")]:
    count = inclusive(name)
    # The server profile inlines some of these into their callers.
    print(f"  {label}: {count // requests:,}" if count else f"  {label}: (not seen: inlined in this build, or not on this path)")
PY
