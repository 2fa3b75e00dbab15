#!/usr/bin/env bash
# The management API's contract: schemathesis (PyPI) with every check
# against the OpenAPI document a real tollgated serves, on a fresh data
# directory, bounded in time. Exits non-zero on any failure.
# Usage: scripts/test-contract.sh [seconds, default 180]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
# Its own Python environment: schemathesis needs a newer pytest than the
# SDK and WebDriver tests pin.
VENV=${TOLLGATE_CONTRACT_VENV:-/var/tmp/tollgate-contract-venv}
if [ ! -x "$VENV/bin/schemathesis" ] || ! cmp -s tests/contract/requirements.txt "$VENV/requirements.txt"; then
  echo "test-contract: preparing $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/contract/requirements.txt
  cp tests/contract/requirements.txt "$VENV/requirements.txt"
fi
BUDGET=${1:-180}
cargo build -q -p tollgate-gateway
WORK=$(mktemp -d /tmp/tollgate-contract.XXXXXX)
"$CARGO_TARGET_DIR/debug/tollgated" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
GW_PID=$!
trap 'kill $GW_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$WORK/out" && break; sleep 0.1; done
BASE=$(sed -n 's/^tollgated listening on //p' "$WORK/out")
[ -n "$BASE" ] || { cat "$WORK/log" >&2; echo "test-contract: the gateway did not start" >&2; exit 1; }
# The document the gateway serves at /admin/v1/openapi.json, from the same code.
"$CARGO_TARGET_DIR/debug/tollgated" openapi >"$WORK/openapi.json"
TOLLGATE_CONTRACT_TOKEN=$(cat "$WORK/data/bootstrap-admin-token") \
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=tests/contract \
  "$VENV/bin/schemathesis" --config-file tests/contract/schemathesis.toml run \
  "$WORK/openapi.json" --url "$BASE" --checks all \
  --max-examples 10 --workers 1 --max-time "$BUDGET" --seed 17 --no-color
