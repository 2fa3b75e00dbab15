#!/usr/bin/env bash
# `make run-xvfb`: `make run` on a virtual display, with a private keyring.
# Saves a screenshot once the window shows; runs until interrupted (or for
# TOLLGATE_RUN_SECONDS seconds when set).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
exec env -u DISPLAY xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-keyring.sh bash -c '
  scripts/run-demo.sh & RUN=$!
  xdotool search --sync --onlyvisible --name "^Tollgate$" >/dev/null
  sleep 3
  import -window root test-artifacts/run-xvfb.png && echo "screenshot: test-artifacts/run-xvfb.png"
  if [ -n "${TOLLGATE_RUN_SECONDS:-}" ]; then sleep "$TOLLGATE_RUN_SECONDS"; pkill -f "debug/tollgate$" || true; fi
  wait $RUN'
