#!/usr/bin/env bash
# `make package`: the installable Debian package of the console, built by the
# Tauri bundler (its beforeBuildCommand builds the UI; the release build embeds
# it through the custom-protocol feature). Works offline. Prints the .deb path
# on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
TAURI=ui/node_modules/.bin/tauri
[ -x "$TAURI" ] || { echo "package: $TAURI is missing: run scripts/setup.sh (npm --prefix ui ci)" >&2; exit 1; }

VERSION=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' tauri.conf.json | head -n1)
BUNDLE_DIR="$CARGO_TARGET_DIR/release/bundle/deb"
# A stale .deb of the same version must not pass for a fresh one.
rm -f "$BUNDLE_DIR"/*_"${VERSION}"_*.deb

start=$(date +%s)
# The CLI's own output goes to stderr so that stdout carries only the result.
# --features custom-protocol: the package's own feature (tauri/custom-protocol),
# named explicitly so the embedded-UI build never depends on the CLI's defaults.
# No network needed once the crates are in Cargo's cache (any earlier build).
# The CLI runs beforeBuildCommand (`npm run build`) in the frontend's folder, ui/.
# `-- -p tollgate-desktop`: the CLI runs a bare `cargo build`, which in this
# workspace builds only default-members (no desktop package among them).
"$TAURI" build --ci --bundles deb --features custom-protocol -- -p tollgate-desktop >&2
echo "package: built in $(($(date +%s) - start)) s" >&2

DEB=$(ls -t "$BUNDLE_DIR"/*_"${VERSION}"_*.deb 2>/dev/null | head -n1 || true)
[ -n "$DEB" ] && [ -f "$DEB" ] || { echo "package: no .deb for version $VERSION under $BUNDLE_DIR" >&2; exit 1; }
echo "$DEB"
