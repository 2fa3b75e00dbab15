#!/usr/bin/env bash
# `make run`: starts a local demo gateway (SQLite store in .demo/gateway) and,
# as its model provider, the simulated provider (a test fixture: it echoes),
# registers the gateway in the console with its admin token in the OS keyring,
# and opens the console window. Stops both when the window closes.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
PORT=${TOLLGATE_DEMO_PORT:-8787}
DEMO=${TOLLGATE_DEMO_DIR:-$PWD/.demo}

if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  cat >&2 <<EOM
make run: no display (DISPLAY and WAYLAND_DISPLAY are unset), so the console window cannot open.
Run it under a virtual display instead:   make run-xvfb
(that starts Xvfb, a private D-Bus session with GNOME Keyring, the demo gateway and the console,
 and saves a screenshot to test-artifacts/run-xvfb.png)
EOM
  exit 1
fi

mkdir -p "$DEMO"
"$TARGET/debug/sim-provider" >"$DEMO/sim-provider.out" 2>&1 &
SIM=$!
"$TARGET/debug/tollgated" serve --data-dir "$DEMO/gateway" --listen "127.0.0.1:$PORT" \
  --name "Local demo" >"$DEMO/gateway.out" 2>"$DEMO/gateway.log" &
GATEWAY=$!
trap 'kill $GATEWAY $SIM 2>/dev/null; wait $GATEWAY $SIM 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $GATEWAY 2>/dev/null || { cat "$DEMO/gateway.log" >&2; echo "the demo gateway failed to start (port $PORT busy? set TOLLGATE_DEMO_PORT)" >&2; exit 1; }
  sleep 0.1
done
TOKEN_FILE="$DEMO/gateway/bootstrap-admin-token"

admin() { curl -fsS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'content-type: application/json' "$@"; }
# Seed two teams on the first run so the Teams page has something to show.
if ! admin "http://127.0.0.1:$PORT/admin/v1/teams" | grep -q '"id"'; then
  for team in "Acme Research" "Globex Support"; do
    admin -o /dev/null -d "{\"name\": \"$team\"}" "http://127.0.0.1:$PORT/admin/v1/teams"
  done
fi
# The simulated provider listens on a new port each start: point the demo's
# provider at it (created on the first run, with one key).
for _ in $(seq 1 50); do grep -q "listening on" "$DEMO/sim-provider.out" 2>/dev/null && break; sleep 0.1; done
SIM_URL=$(sed -n 's/^sim-provider listening on //p' "$DEMO/sim-provider.out")
PROVIDER=$(admin "http://127.0.0.1:$PORT/admin/v1/providers" | python3 -c 'import json, sys; items = json.load(sys.stdin)["items"]; print(items[0]["id"] if items else "")')
if [ -z "$PROVIDER" ]; then
  PROVIDER=$(admin -d "{\"name\": \"Simulated provider (test fixture)\", \"kind\": \"openai-compatible\", \"base_url\": \"$SIM_URL/v1\",
      \"models\": [{\"name\": \"sim-small\", \"input_price\": \"0.15\", \"output_price\": \"0.60\"},
                 {\"name\": \"sim-large\", \"input_price\": \"2.50\", \"output_price\": \"10.00\"}]}" \
    "http://127.0.0.1:$PORT/admin/v1/providers" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  admin -o /dev/null -d '{"label": "demo key", "secret": "sim-key-demo-0001"}' "http://127.0.0.1:$PORT/admin/v1/providers/$PROVIDER/keys"
else
  admin -o /dev/null -X PATCH -d "{\"base_url\": \"$SIM_URL/v1\"}" "http://127.0.0.1:$PORT/admin/v1/providers/$PROVIDER"
fi

"$TARGET/debug/tollgate" instance add --name "Local demo" --url "http://127.0.0.1:$PORT" \
  --environment dev --token-file "$TOKEN_FILE" --check >/dev/null
echo "demo gateway on http://127.0.0.1:$PORT (data in $DEMO/gateway); opening the console"
"$TARGET/debug/tollgate"
