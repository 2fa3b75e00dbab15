#!/usr/bin/env bash
# The API contracts: schemathesis (PyPI) with every check against the
# OpenAPI documents real tollgated processes serve, each on a fresh data
# directory, bounded in time: the management API (the budget), then the
# consumer API and the prompt APIs' document (a third of it each) on a
# gateway forwarding to the simulated provider. Exits non-zero on any
# failure. One worker: hypothesis describes strategies by parsing source,
# which is not safe across threads.
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
cargo build -q -p tollgate-gateway -p tollgate-sim-provider
WORK=$(mktemp -d /tmp/tollgate-contract.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Starts a program that prints "<marker><URL>" once it listens; sets URL.
start() {
  local name=$1 marker=$2
  shift 2
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PIDS+=($!)
  URL=
  for _ in $(seq 100); do
    URL=$(sed -n "s|^$marker||p" "$WORK/$name.out")
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  echo "test-contract: $name did not start" >&2
  exit 1
}

schemathesis() {
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH=tests/contract \
    "$VENV/bin/schemathesis" --config-file tests/contract/schemathesis.toml run "$@" \
    --checks all --workers 1 --seed 17 --no-color
}

echo "test-contract: the management API (/admin/v1/openapi.json), ${BUDGET} s"
start admin-gateway "tollgated listening on " \
  "$CARGO_TARGET_DIR/debug/tollgated" serve --data-dir "$WORK/admin" --listen 127.0.0.1:0
ADMIN_BASE=$URL
# The document the gateway serves at /admin/v1/openapi.json, from the same code.
"$CARGO_TARGET_DIR/debug/tollgated" openapi >"$WORK/openapi.json"
TOLLGATE_CONTRACT_TOKEN=$(cat "$WORK/admin/bootstrap-admin-token") TOLLGATE_CONTRACT_KEY=unused \
  schemathesis "$WORK/openapi.json" --url "$ADMIN_BASE" --max-examples 10 --max-time "$BUDGET"

# The consumer API, on a gateway whose provider is the simulated one (a test
# fixture), with a subscribed consumer and a published prompt API.
start sim "sim-provider listening on " "$CARGO_TARGET_DIR/debug/sim-provider"
SIM=$URL
start consumer-gateway "tollgated listening on " \
  "$CARGO_TARGET_DIR/debug/tollgated" serve --data-dir "$WORK/consumer" --listen 127.0.0.1:0
BASE=$URL
TOKEN=$(cat "$WORK/consumer/bootstrap-admin-token")
KEY=$("$VENV/bin/python" tests/contract/consumer_setup.py "$BASE" "$TOKEN" "$SIM")
CONSUMER_BUDGET=${CONSUMER_BUDGET:-$(( BUDGET / 3 ))}
echo "test-contract: the consumer API (/v1/openapi.json), ${CONSUMER_BUDGET} s"
"$CARGO_TARGET_DIR/debug/tollgated" openapi --consumer >"$WORK/consumer-openapi.json"
TOLLGATE_CONTRACT_TOKEN=unused TOLLGATE_CONTRACT_KEY=$KEY \
  schemathesis "$WORK/consumer-openapi.json" --url "$BASE" --max-examples 25 --max-time "$CONSUMER_BUDGET"
echo "test-contract: the prompt APIs' document (/apis/openapi.json), as served, ${CONSUMER_BUDGET} s"
curl -fsS "$BASE/apis/openapi.json" >"$WORK/apis-openapi.json"
TOLLGATE_CONTRACT_TOKEN=unused TOLLGATE_CONTRACT_KEY=$KEY \
  schemathesis "$WORK/apis-openapi.json" --url "$BASE" --max-examples 25 --max-time "$CONSUMER_BUDGET"
