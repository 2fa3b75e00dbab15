#!/usr/bin/env bash
# `make run`: starts a local demo gateway (SQLite store in .demo/gateway),
# registers it in the console with its admin token in the OS keyring, and
# opens the console window. Stops the gateway when the window closes.
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
"$TARGET/debug/tollgated" serve --data-dir "$DEMO/gateway" --listen "127.0.0.1:$PORT" \
  --name "Local demo" >"$DEMO/gateway.out" 2>"$DEMO/gateway.log" &
GATEWAY=$!
trap 'kill $GATEWAY 2>/dev/null; wait $GATEWAY 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $GATEWAY 2>/dev/null || { cat "$DEMO/gateway.log" >&2; echo "the demo gateway failed to start (port $PORT busy? set TOLLGATE_DEMO_PORT)" >&2; exit 1; }
  sleep 0.1
done
TOKEN_FILE="$DEMO/gateway/bootstrap-admin-token"

# Seed two teams on the first run so the Teams page has something to show.
if ! curl -fsS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "http://127.0.0.1:$PORT/admin/v1/teams" | grep -q '"id"'; then
  for team in "Acme Research" "Globex Support"; do
    curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'content-type: application/json' \
      -d "{\"name\": \"$team\"}" "http://127.0.0.1:$PORT/admin/v1/teams"
  done
fi

"$TARGET/debug/tollgate" instance add --name "Local demo" --url "http://127.0.0.1:$PORT" \
  --environment dev --token-file "$TOKEN_FILE" --check >/dev/null
echo "demo gateway on http://127.0.0.1:$PORT (data in $DEMO/gateway); opening the console"
"$TARGET/debug/tollgate"
