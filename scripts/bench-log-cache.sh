#!/usr/bin/env bash
# `make bench-log-cache`: the call-log cache's figures (issue 5; BENCHMARKS.md
# "Call-log cache"), from crates/console/examples/bench_log_cache.rs:
#
#  1. ingest rate: N records (BENCH_INGEST, default 1,000,000) into the cache,
#     pre-parsed and through the sync's whole path (NDJSON lines checked, then
#     stored), next to a raw SQLite bulk insert of the same rows (the floor),
#     in one run;
#  2. a cache of each size in BENCH_SIZES (default "10000000 50000000") built
#     under BENCH_DIR (kept between runs: a build resumes, a built cache is
#     reused), its size per million records, and the p50/p95/max of a filtered
#     page, a full-text search and a 30-day chart (BENCH_RUNS runs of each
#     kind, default 200).
#
# Synthetic records (see the example's header); 50 million take ~20 GB of disk
# and over an hour to build on this machine. Bounded: every step ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
DIR=${BENCH_DIR:-/var/tmp/tollgate-log-cache-bench}
SIZES=${BENCH_SIZES:-10000000 50000000}
mkdir -p "$DIR"
cargo build -q --release -p tollgate-console --example bench_log_cache
BIN=$CARGO_TARGET_DIR/release/examples/bench_log_cache

echo "== ingest"
rm -rf "$DIR/ingest"
"$BIN" ingest "${BENCH_INGEST:-1000000}" "$DIR/ingest"
rm -rf "$DIR/ingest"
for n in $SIZES; do
  echo "== $n records"
  "$BIN" build "$n" "$DIR/cache-$n.db"
  "$BIN" query "$DIR/cache-$n.db" "${BENCH_RUNS:-200}"
done
