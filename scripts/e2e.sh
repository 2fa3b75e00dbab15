#!/usr/bin/env bash
# End-to-end tests: the real desktop binary (UI embedded) driven over WebDriver
# (tauri-driver + WebKitWebDriver) under Xvfb, with a private GNOME Keyring,
# against real tollgated processes. Screenshots land in test-artifacts/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TOLLGATE_VENV:-/var/tmp/tollgate-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
mkdir -p test-artifacts/e2e
# An instance of several nodes needs PostgreSQL: the run's server, or one of our own.
if [ -z "${TOLLGATE_TEST_POSTGRES:-}" ]; then
  source scripts/lib/postgres.sh
  start_test_postgres
fi
env -u DISPLAY timeout 900 xvfb-run -a -s "-screen 0 1280x800x24" \
  scripts/with-keyring.sh "$VENV/bin/pytest" -v -p no:cacheprovider tests/e2e "$@"
