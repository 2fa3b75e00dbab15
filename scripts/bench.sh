#!/usr/bin/env bash
# `make bench`: every benchmark; figures go to BENCHMARKS.md by hand, with the command.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== gateway: management API"; scripts/bench-gateway.sh
echo "== gateway: data plane vs nginx"; scripts/bench-dataplane.sh
echo "== gateway: the data plane on SQLite and on PostgreSQL"; scripts/bench-stores.sh
echo "== gateway: two nodes behind nginx, and the money check under load"; scripts/bench-cluster.sh
echo "== gateway: streaming overhead (time to first token)"; scripts/bench-streaming.sh
echo "== gateway vs LiteLLM"; scripts/bench-litellm.sh
if [ -x scripts/bench-console.sh ]; then echo "== console"; scripts/bench-console.sh; fi
echo "== console: call-log cache (builds 10M- and 50M-record caches: over an hour the first time)"; scripts/bench-log-cache.sh
