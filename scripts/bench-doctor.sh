#!/usr/bin/env bash
# `make bench-doctor`: the 402 doctor's time from opening to a diagnosis
# (issue 6; BENCHMARKS.md "402 doctor"), from
# crates/console/examples/bench_doctor.rs: a real tollgated (release build)
# with BENCH_CONSUMERS consumers (default 200; one in ten refused with 402),
# its log synced into the console's cache, then BENCH_RUNS diagnoses (default
# 200) from a request id, a consumer and a pasted response — live, then with
# the gateway stopped (from the cache). Release builds; a private keyring.
# Bounded: the example ends by itself; the timeout is a backstop.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
cargo build -q --release -p tollgate-gateway -p tollgate-console --example bench_doctor
exec timeout 900 scripts/with-keyring.sh "$CARGO_TARGET_DIR/release/examples/bench_doctor" \
  "$CARGO_TARGET_DIR/release/tollgated" "${BENCH_CONSUMERS:-200}" "${BENCH_RUNS:-200}"
