#!/usr/bin/env bash
# Data-plane figures, side by side in one run under the same CPU pinning:
#   1. an authenticated, billed POST /v1/chat/completions forwarded by tollgated
#      to the simulated provider (test fixture) vs nginx proxying the same
#      upstream (proxy_pass with keepalive);
#   2. a refusal decided by tollgated (402 insufficient-funds) vs nginx
#      answering a static copy of that same 402 answer (and, for reference,
#      a minimal static 402 body).
# The server under test runs on CPU 0; the upstream and wrk on CPU 1.
# BENCH_PERF_DIR=dir records a perf profile of tollgated during its runs.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
DURATION=${BENCH_DURATION:-6s}
CONNS=${BENCH_CONNECTIONS:-32}
# The gateway as deployed (`make server`, profile-guided), unless
# BENCH_GATEWAY names another build of it.
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-dp.XXXXXX)
source scripts/lib/gateway-fixture.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_sim taskset -c 1
start_gateway taskset -c 0 "$GATEWAY"
RICH=$(consumer_key rich 1000000)
BROKE=$(consumer_key broke)
# nginx serves a static copy of the gateway's own 402 answer, so both send
# the same bytes; a minimal 402 is measured too, for reference.
REFUSAL=$(curl -sS -H "Authorization: Bearer $BROKE" -H 'content-type: application/json' -d "$CHAT_BODY" "$GW/v1/chat/completions")
case "$REFUSAL" in *insufficient-funds*) ;; *) echo "unexpected refusal: $REFUSAL" >&2; exit 1 ;; esac
case "$REFUSAL" in *'$'*|*"'"*|*'\'*) echo "the refusal needs escaping for nginx: $REFUSAL" >&2; exit 1 ;; esac

cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity 01;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
  # The gateway writes a call log record for every call, so nginx logs every
  # request too (buffered, as deployments run it).
  access_log $WORK/nginx-access.log combined buffer=64k flush=1s;
  upstream sim { server $SIM; keepalive 64; }
  server {
    listen 127.0.0.1:0;
    listen 127.0.0.1:18402;
    location /v1/ { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /static402 { default_type application/problem+json; return 402 '$REFUSAL'; }
    location = /static402-minimal { default_type application/problem+json; return 402 '{"type":"about:blank","title":"Payment Required","status":402}'; }
  }
}
NGINX
sed -i '/listen 127.0.0.1:0;/d' "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK" && PIDS+=("$(cat "$WORK/nginx.pid" 2>/dev/null || true)")
sleep 0.3
NGINX_URL=http://127.0.0.1:18402

chat_script "$WORK/post.lua"

run() { # key-label label url [api-key]
  local out
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s "$WORK/post.lua" ${4:+-H "Authorization: Bearer $4"} "$3" >/dev/null
  local perf_pid=
  if [ -n "${BENCH_PERF_DIR:-}" ] && [ "${2%%:*}" = tollgated ]; then
    # Profile the gateway while wrk measures it: perf report -i $BENCH_PERF_DIR/<n>.data
    mkdir -p "$BENCH_PERF_DIR"
    perf record -q -F "${BENCH_PERF_FREQ:-1999}" ${BENCH_PERF_CALLGRAPH:--g} -p "$GW_PID" -o "$BENCH_PERF_DIR/$(ls "$BENCH_PERF_DIR" | wc -l).data" -- sleep "${DURATION%s}" 2>/dev/null &
    perf_pid=$!
  fi
  local server_pid=$GW_PID before
  [ "${2%%:*}" = nginx ] && server_pid=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
  before=$(cpu_ticks "$server_pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" ${4:+-H "Authorization: Bearer $4"} "$3")
  local ticks=$(( $(cpu_ticks "$server_pid") - before ))
  [ -n "$perf_pid" ] && wait "$perf_pid"
  echo "$out" >&2
  local requests
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF}')" \
    "$(python3 -c "print(f'{$ticks * 1e6 / $(getconf CLK_TCK) / $requests:.1f}')")" >>"$WORK/results"
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The machine's two cores are shared with the rest of the system, so single
# runs wander; each pair is measured back to back, ROUNDS times, tollgated
# first in odd rounds and nginx first in even ones (so that a drift within a
# round favours neither); the table shows the medians and the ratios are
# medians of per-round ratios. BENCH_ONLY=forward|refusal measures one pair.
ROUNDS=${BENCH_ROUNDS:-7}
ONLY=${BENCH_ONLY:-}
gw_ok() { run gw_ok "tollgated: authenticated, billed chat completion forwarded upstream" "$GW/v1/chat/completions" "$RICH"; }
ng_ok() { run ng_ok "nginx: proxy_pass to the same upstream (keepalive)" "$NGINX_URL/v1/chat/completions"; }
gw_402() { run gw_402 "tollgated: 402 insufficient-funds decided by the gateway" "$GW/v1/chat/completions" "$BROKE"; }
ng_402() {
  run ng_402 "nginx: static copy of the gateway's 402 answer ($(printf %s "$REFUSAL" | wc -c) B)" "$NGINX_URL/static402"
  run ng_402_min "nginx: minimal static 402 body (64 B; reference only)" "$NGINX_URL/static402-minimal"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  if [ $((round % 2)) = 1 ]; then first=gw second=ng; else first=ng second=gw; fi
  if [ "$ONLY" != refusal ]; then "${first}_ok"; "${second}_ok"; fi
  if [ "$ONLY" != forward ]; then "${first}_402"; "${second}_402"; fi
done
echo "tollgated: $GATEWAY"
python3 - "$WORK/results" "$CONNS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, conns, duration, rounds = sys.argv[1:]
rows = {}
for line in open(path):
    key, label, rps, p50, p99, non2xx, cpu = line.rstrip("\n").split("\t")
    rows.setdefault(key, (label, []))[1].append((float(rps), p50, p99, non2xx or "0", float(cpu)))
print(f"| Request (c={conns}, {duration} x {rounds} rounds, server on CPU 0, upstream and wrk on CPU 1) "
      "| req/s (median) | req/s per round | p50 | p99 | non-2xx | server CPU per request |")
print("|---|---|---|---|---|---|---|")
median = {}
for key, (label, runs) in rows.items():
    per_round = " / ".join(f"{r[0]:,.0f}" for r in runs)  # in the order measured
    mid = sorted(runs)[len(runs) // 2]
    median[key] = mid[0]
    cpu = statistics.median(r[4] for r in runs)
    print(f"| {label} | {mid[0]:,.0f} | {per_round} | {mid[1]} | {mid[2]} | {mid[3]} | {cpu:.1f} µs |")
print()
# Each round measures tollgated and nginx seconds apart, so the ratio within
# a round cancels most of the machine's drift; its median is the figure.
def paired(a, b):
    ratios = sorted(x[0] / y[0] for x, y in zip(rows[a][1], rows[b][1]))
    text = " / ".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(ratios):.2f} (rounds: {text})"
if "gw_ok" in median:
    print(f"forwarding: tollgated / nginx = {paired('gw_ok', 'ng_ok')}, goal >= 0.8")
if "gw_402" in median:
    print(f"refusal:    tollgated / nginx = {paired('gw_402', 'ng_402')}, goal >= 0.7")
    print(f"            against the minimal body {paired('gw_402', 'ng_402_min')}")
PY
