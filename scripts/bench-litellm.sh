#!/usr/bin/env bash
# Chat completions through tollgated vs through LiteLLM's proxy (from PyPI,
# offline, no database) to the same simulated provider (test fixture), side
# by side in one run under the same CPU pinning: each proxy on CPU 0 (LiteLLM
# with one worker), the simulator and wrk on CPU 1. Both check a key on every
# call: a consumer key billed against a wallet (tollgated), the master key
# (LiteLLM). The proxies are measured in alternation, BENCH_ROUNDS times
# (default 3) for BENCH_DURATION each (default 10s); ratios are medians of
# per-round ratios. Installs LiteLLM into $LITELLM_VENV when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-16}
LITELLM_VENV=${LITELLM_VENV:-/var/tmp/tollgate-litellm-venv}
if [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install -q 'litellm[proxy]'
fi
# The gateway as deployed (`make server`), unless BENCH_GATEWAY names another build.
GATEWAY=${BENCH_GATEWAY:-$(scripts/build-server.sh)}
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-bench-litellm.XXXXXX)
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
ADMIN=$(cat "$WORK/gw/bootstrap-admin-token")
api() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -H "Idempotency-Key: $RANDOM$RANDOM$RANDOM" -X "$1" -d "${3:-}" "$GW$2"; }
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
PROVIDER=$(api POST /admin/v1/providers "{\"name\":\"Sim\",\"kind\":\"openai-compatible\",\"base_url\":\"$SIM/v1\",\"models\":[{\"name\":\"sim-small\",\"input_price\":\"0.10\",\"output_price\":\"0.20\"}]}" | json '["id"]')
api POST "/admin/v1/providers/$PROVIDER/keys" '{"label":"bench","secret":"sim-key-bench-0001"}' >/dev/null
TEAM=$(api POST /admin/v1/teams '{"name":"bench"}' | json '["id"]')
CONSUMER=$(api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"bench\"}" | json '["id"]')
KEY=$(api POST "/admin/v1/consumers/$CONSUMER/keys" '{"name":"bench"}' | json '["secret"]')
PLAN=$(api POST /admin/v1/plans '{"name":"bench","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"]}' | json '["id"]')
api POST /admin/v1/subscriptions "{\"consumer_id\":\"$CONSUMER\",\"plan_id\":\"$PLAN\"}" >/dev/null
api POST "/admin/v1/consumers/$CONSUMER/wallets/USD/entries" '{"kind":"top_up","amount":"1000000"}' >/dev/null

MASTER=sk-bench-master-0001
cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: sim-small
    litellm_params:
      model: openai/sim-small
      api_base: $SIM/v1
      api_key: sim-key-bench-0002
litellm_settings:
  telemetry: false
YAML
LITELLM_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LITELLM_MASTER_KEY=$MASTER LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
  taskset -c 0 "$LITELLM_VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1 \
  >"$WORK/litellm.out" 2>&1 & PIDS+=($!)
LITELLM=http://127.0.0.1:$LITELLM_PORT
for _ in $(seq 1 120); do curl -fsS -o /dev/null "$LITELLM/health/liveliness" 2>/dev/null && break; sleep 1; done
BODY='{"model":"sim-small","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
for target in "$GW $KEY" "$LITELLM $MASTER"; do
  set -- $target
  answer=$(curl -fsS -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$BODY" "$1/v1/chat/completions")
  case "$answer" in *'echo: hello there'*) ;; *) echo "unexpected answer from $1: $answer" >&2; exit 1 ;; esac
done
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$BODY'" >"$WORK/post.lua"

run() { # key label url api-key
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$WORK/post.lua" -H "Authorization: Bearer $4" "$3/v1/chat/completions" >/dev/null
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" -H "Authorization: Bearer $4" "$3/v1/chat/completions")
  echo "$out" >&2
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF}')" >>"$WORK/results"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  run gw "tollgated: consumer key, wallet billing, provider key pool" "$GW" "$KEY"
  run litellm "LiteLLM proxy (1 worker, master key)" "$LITELLM" "$MASTER"
done
python3 - "$WORK/results" "$CONNS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, conns, duration, rounds = sys.argv[1:]
rows = {}
for line in open(path):
    key, label, rps, p50, p99, non2xx = line.rstrip("\n").split("\t")
    rows.setdefault(key, (label, []))[1].append((float(rps), p50, p99, non2xx or "0"))
print(f"| POST /v1/chat/completions (c={conns}, {duration} x {rounds} rounds, proxy on CPU 0, simulator and wrk on CPU 1) | req/s (median) | req/s per round | p50 | p99 | non-2xx |")
print("|---|---|---|---|---|---|")
for key, (label, runs) in rows.items():
    mid = sorted(runs)[len(runs) // 2]
    print(f"| {label} | {mid[0]:,.0f} | {' / '.join(f'{r[0]:,.0f}' for r in runs)} | {mid[1]} | {mid[2]} | {mid[3]} |")
ratios = [g[0] / l[0] for g, l in zip(rows["gw"][1], rows["litellm"][1])]
print(f"\ntollgated / LiteLLM = {statistics.median(ratios):.0f}x (rounds: {' / '.join(f'{r:.0f}' for r in sorted(ratios))}), goal >= 100x at a lower p99")
PY
