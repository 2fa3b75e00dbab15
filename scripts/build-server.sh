#!/usr/bin/env bash
# The gateway as deployed and benchmarked (`make server`): the `server`
# profile (fat LTO, one codegen unit), optimised with a profile of the
# gateway at work (profile-guided optimisation, PGO):
#   1. an instrumented build serves a training run (scripts/pgo-train.sh);
#   2. llvm-profdata merges what it recorded;
#   3. the final build lays out and inlines code by that profile.
# Prints the binary's path: $CARGO_TARGET_DIR/deploy/tollgated.
# Each step is skipped when the gateway's code has not changed since it last
# ran. SERVER_PGO=0 builds the `server` profile alone (the same path).
# The two builds have their own target dirs inside the shared one, since
# their compiler flags differ from the usual builds'.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
HOST=$(rustc -vV | sed -n 's/^host: //p')
OUT=$TARGET/deploy
mkdir -p "$OUT"
log() { echo "build-server: $*" >&2; }

if [ "${SERVER_PGO:-1}" = 0 ]; then
  CARGO_TARGET_DIR=$TARGET cargo build -q --profile server -p tollgate-gateway
  cp "$TARGET/server/tollgated" "$OUT/tollgated.tmp" && mv "$OUT/tollgated.tmp" "$OUT/tollgated"
  echo "$OUT/tollgated"
  exit 0
fi

# llvm-profdata must read the profile format of rustc's own LLVM.
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
PROFDATA=$(command -v "llvm-profdata-$LLVM_MAJOR" || true)
if [ -z "$PROFDATA" ]; then
  log "llvm-profdata-$LLVM_MAJOR is missing (for rustc's LLVM $LLVM_MAJOR)"
  source scripts/lib/apt.sh
  apt_install "llvm-$LLVM_MAJOR"
  PROFDATA=$(command -v "llvm-profdata-$LLVM_MAJOR")
fi

# `--target` keeps the flags off build scripts and proc macros (which
# would otherwise write profiles of their own while compiling).
GEN=$TARGET/pgo-generate
USE=$TARGET/pgo-use
RAW=$GEN/profiles
PROFILE=$TARGET/pgo-tollgated.profdata
log "1/3 instrumented build"
RUSTFLAGS="-Cprofile-generate=$RAW" CARGO_TARGET_DIR=$GEN \
  cargo build -q --profile server --target "$HOST" -p tollgate-gateway
INSTRUMENTED=$GEN/$HOST/server/tollgated
STAMP=$(sha256sum "$INSTRUMENTED" | cut -c1-16)
if [ -f "$PROFILE" ] && [ "$(cat "$PROFILE.stamp" 2>/dev/null)" = "$STAMP" ]; then
  log "2/3 training: the profile is of this code already"
else
  log "2/3 training run"
  rm -rf "$RAW"
  scripts/pgo-train.sh "$INSTRUMENTED" >&2
  "$PROFDATA" merge -o "$PROFILE.tmp" "$RAW"
  mv "$PROFILE.tmp" "$PROFILE"
  echo "$STAMP" >"$PROFILE.stamp"
  # Cargo does not track the profile's contents: the gateway's crate is
  # cleaned so that it is rebuilt with the new one. Dependencies keep the
  # profile of their first build, as their code does not change.
  CARGO_TARGET_DIR=$USE cargo clean -q --profile server --target "$HOST" -p tollgate-gateway
fi
log "3/3 optimised build"
RUSTFLAGS="-Cprofile-use=$PROFILE" CARGO_TARGET_DIR=$USE \
  cargo build -q --profile server --target "$HOST" -p tollgate-gateway
cp "$USE/$HOST/server/tollgated" "$OUT/tollgated.tmp" && mv "$OUT/tollgated.tmp" "$OUT/tollgated"
echo "$OUT/tollgated"
