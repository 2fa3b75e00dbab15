#!/usr/bin/env bash
# The training run of the gateway's profile-guided build (scripts/build-server.sh):
# an instrumented tollgated serves a mix of the traffic a gateway sees, in
# front of the simulated provider (a test fixture), and writes its profile
# when it stops.
#   usage: scripts/pgo-train.sh INSTRUMENTED-TOLLGATED
# The mix: billed calls forwarded (to the default upstream, and to a
# provider's key pool, plain and streamed), the refusals a
# consumer meets (402 insufficient funds, 401 unknown key, 403 awaiting
# approval, 429 rate limited, 400 malformed), the consumer's status and
# models, and the management API's reads and writes. Each part runs for a
# few seconds: the profile needs which branches are taken, not long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
BIN=$1
SECS=${PGO_TRAIN_SECONDS:-3}
if ! command -v wrk >/dev/null; then source scripts/lib/apt.sh; apt_install wrk; fi
cargo build -q --release -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-pgo-train.XXXXXX)
source scripts/lib/gateway-fixture.sh
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_sim
start_gateway "$BIN"
RICH=$(consumer_key rich 1000000)
BROKE=$(consumer_key broke)
APPROVAL=$(api POST /admin/v1/plans '{"name":"reviewed","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"],"approval_required":true}' | json '["id"]')
PENDING=$(consumer_key pending 10 "$APPROVAL")
LIMITED_PLAN=$(api POST /admin/v1/plans '{"name":"limited","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"],"rate_limits":{"requests_per_minute":100}}' | json '["id"]')
LIMITED=$(consumer_key limited 10 "$LIMITED_PLAN")
# A provider with a key pool serves sim-large (sim-small stays with the
# default upstream): routed calls, plain and streamed.
PROVIDER=$(api POST /admin/v1/providers "{\"name\":\"Sim\",\"kind\":\"openai-compatible\",\"base_url\":\"http://$SIM/v1\",\"models\":[{\"name\":\"sim-large\",\"input_price\":\"0.10\",\"output_price\":\"0.20\"}]}" | json '["id"]')
api POST "/admin/v1/providers/$PROVIDER/keys" '{"label":"train","secret":"sim-key-train-0001"}' >/dev/null
ROUTED='{"model":"sim-large","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
STREAMED='{"model":"sim-large","messages":[{"role":"user","content":"hello there"}],"max_tokens":16,"stream":true}'
MALFORMED='{"model":"sim-small","messages":"hello"}'

# load SECONDS LABEL EXPECTED-STATUS KEY BODY: one call first, to check
# that the part trains the path it names, then wrk for SECONDS.
load() {
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $4" \
    -H 'content-type: application/json' -d "$5" "$GW/v1/chat/completions")
  [ "$status" = "$3" ] || { echo "pgo-train: $2 answered $status, not $3" >&2; exit 1; }
  chat_script "$WORK/load.lua" "$5"
  wrk -t1 -c16 -d"$1"s -s "$WORK/load.lua" -H "Authorization: Bearer $4" "$GW/v1/chat/completions" |
    awk -v what="$2 ($3)" '/Requests\/sec/ {printf "  %-40s %s calls/s\n", what, $2}'
}
echo "pgo-train: the data plane"
load "$SECS" "billed call forwarded" 200 "$RICH" "$CHAT_BODY"
load "$SECS" "insufficient funds" 402 "$BROKE" "$CHAT_BODY"
load 1 "call routed to a provider's key pool" 200 "$RICH" "$ROUTED"
load 1 "streamed call" 200 "$RICH" "$STREAMED"
load 1 "unknown key" 401 "tg_not_a_key_of_this_gateway" "$CHAT_BODY"
load 1 "subscription awaiting approval" 403 "$PENDING" "$CHAT_BODY"
# The first 100 calls of the minute pass; the rest are rate limited.
load 1 "within the rate limit, then past it" 200 "$LIMITED" "$CHAT_BODY"
load 1 "malformed request" 400 "$RICH" "$MALFORMED"
wrk -t1 -c8 -d1s -H "Authorization: Bearer $RICH" "$GW/v1/billing/status" >/dev/null
wrk -t1 -c8 -d1s -H "Authorization: Bearer $RICH" "$GW/v1/models" >/dev/null
echo "pgo-train: the management API"
for i in $(seq 1 20); do
  api GET /admin/v1/consumers >/dev/null
  api GET /admin/v1/subscriptions >/dev/null
  api GET "/admin/v1/logs?limit=100" >/dev/null
  api GET /admin/v1/logs/stats >/dev/null
  api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"c$i\"}" >/dev/null
done
# A clean stop: the profile is written as the process exits.
kill -TERM "$GW_PID"
wait "$GW_PID"
