#!/usr/bin/env bash
# Installs what building, running and testing Tollgate needs, when missing:
# Debian packages, the UI's npm packages, tauri-driver, and the Python test
# environment. Safe to run again; does nothing when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build the Tauri app
  pkg-config libssl-dev libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
  librsvg2-dev libayatana-appindicator3-dev libxdo-dev file libdbus-1-dev
  # run and test headless: X, WebDriver, keyring, screenshots
  xvfb xauth imagemagick x11-utils xdotool webkit2gtk-driver gnome-keyring libsecret-tools dbus-x11
  keyutils fonts-dejavu-core iproute2 curl
  # a notification daemon whose history the e2e tests read (desktop notifications)
  dunst
  # benchmarks
  wrk nginx hyperfine
  # the date-sensitive suites at other dates (scripts/test-dates.sh)
  faketime
  # the gateway's PostgreSQL store: the tests start throwaway servers (initdb, postgres, psql)
  postgresql
  # promtool, which checks the gateway's /metrics (Debian's prometheus package)
  prometheus
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  echo "setup: installing the UI's npm packages"
  npm --prefix ui ci --no-audit --no-fund
fi

if ! command -v tauri-driver >/dev/null; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --locked --version '^2'
fi
if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

VENV=${TOLLGATE_VENV:-/var/tmp/tollgate-venv}
if [ ! -x "$VENV/bin/python" ] || ! cmp -s tests/requirements.txt "$VENV/requirements.txt"; then
  echo "setup: preparing the Python test environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/requirements.txt
  cp tests/requirements.txt "$VENV/requirements.txt"
fi
