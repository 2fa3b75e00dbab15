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
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  { echo "bench-instructions needs valgrind (apt-get install valgrind)" >&2; exit 1; }
MODE=${BENCH_MODE:-refusal}
# The gateway as deployed (`make server`), unless BENCH_GATEWAY names
# another build (one with line tables shows where the instructions go).
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-instr.XXXXXX)
OUT=${1:-$WORK/callgrind.out}
source scripts/lib/gateway-fixture.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

if [ "$MODE" = forward ]; then start_sim; fi
start_gateway valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" "$GATEWAY"
if [ "$MODE" = forward ]; then KEY=$(consumer_key bench 1000000); else KEY=$(consumer_key broke); fi
chat_script "$WORK/post.lua"
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
digest = inclusive("tollgate_gateway::tokens::token_digest")
print(f"requests counted: {requests:,}")
if digest:
    print(f"user-space instructions per call: {total // requests:,} "
          f"({(total - digest) // requests:,} without the key digest, which runs without SHA-NI under valgrind)")
else:
    print(f"user-space instructions per call: {total // requests:,} "
          "(with the key digest, inlined in this build, which runs without SHA-NI under valgrind)")
for name, label in [("hyper::proto::h1::io::Buffered<T,B>::parse", "hyper: request head parsing"),
                    ("tollgate_gateway::dataplane::chat::handle", "gateway: authenticate (with the key digest), decide, reserve, refuse"),
                    ("tollgate_gateway::dataplane::chat::parse_request", "  of which the request body (JSON)"),
                    ("tollgate_gateway::dataplane::chat::forward", "gateway: forwarding and settling (forward mode)"),
                    ("tollgate_gateway::dataplane::Call::finish", "gateway: the answer's headers (and a refusal's body)")]:
    count = inclusive(name)
    # The server profile inlines some of these into their callers.
    print(f"  {label}: {count // requests:,}" if count else f"  {label}: (not seen: inlined in this build, or not on this path)")
PY
