# Sourced by the data-plane benchmarks and the PGO training run: starts the
# simulated provider (a test fixture: a local OpenAI-compatible upstream) and
# a tollgated in front of it, and makes consumers to call it with.
# The caller sets TARGET (the cargo target dir) and WORK (a scratch dir), and
# kills "${PIDS[@]}" when it exits.
PIDS=()

wait_line() { # file text
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for '$2' in $1" >&2
  exit 1
}

# start_sim [command prefix…]: sets SIM (host:port).
start_sim() {
  "$@" "$TARGET/release/sim-provider" >"$WORK/sim.out" 2>&1 &
  PIDS+=($!)
  wait_line "$WORK/sim.out" "listening on"
  SIM=$(sed -n 's/^sim-provider listening on http:\/\///p' "$WORK/sim.out")
}

# start_gateway command…: runs `command… serve` on a fresh data dir, with the
# simulated provider as its upstream at a fixed price per call; sets GW_PID,
# GW (its URL), ADMIN (the bootstrap admin token), TEAM and PLAN (a monthly
# plan at price 0 whose calls are charged to the wallet).
start_gateway() {
  printf 'upstream_url = "http://%s/v1"\nprice_per_request = "0.000001"\n' "${SIM:-127.0.0.1:9}" >"$WORK/gw.toml"
  RUST_LOG=warn "$@" serve --data-dir "$WORK/gw" --listen 127.0.0.1:0 --config "$WORK/gw.toml" \
    >"$WORK/gw.out" 2>"$WORK/gw.log" &
  GW_PID=$!
  PIDS+=($GW_PID)
  wait_line "$WORK/gw.out" "listening on"
  GW=$(sed -n 's/^tollgated listening on //p' "$WORK/gw.out")
  ADMIN=$(cat "$WORK/gw/bootstrap-admin-token")
  TEAM=$(api POST /admin/v1/teams '{"name":"bench"}' | json '["id"]')
  PLAN=$(api POST /admin/v1/plans '{"name":"bench","currency":"USD","price":"0","period":"month","overage":"charge_wallet","apis":["chat"]}' | json '["id"]')
}

# api METHOD PATH [JSON]: a management API call as the bootstrap admin.
api() {
  curl -fsS -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -H "Idempotency-Key: $RANDOM$RANDOM$RANDOM" -X "$1" -d "${3:-}" "$GW$2"
}
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

# consumer_key NAME [TOP-UP] [PLAN]: a consumer subscribed to PLAN (the
# fixture's plan by default), with TOP-UP dollars in its wallet; prints its key.
consumer_key() {
  local consumer key
  consumer=$(api POST /admin/v1/consumers "{\"team_id\":\"$TEAM\",\"name\":\"$1\"}" | json '["id"]')
  key=$(api POST "/admin/v1/consumers/$consumer/keys" '{"name":"bench"}' | json '["secret"]')
  api POST /admin/v1/subscriptions "{\"consumer_id\":\"$consumer\",\"plan_id\":\"${3:-$PLAN}\"}" >/dev/null
  if [ -n "${2:-}" ]; then
    api POST "/admin/v1/consumers/$consumer/wallets/USD/entries" "{\"kind\":\"top_up\",\"amount\":\"$2\"}" >/dev/null
  fi
  echo "$key"
}

# The chat completion every benchmark sends, as a wrk script.
CHAT_BODY='{"model":"sim-small","messages":[{"role":"user","content":"hello there"}],"max_tokens":16}'
chat_script() { # file [body]
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '${2:-$CHAT_BODY}'
wrk.headers["Content-Type"] = "application/json"
LUA
}
