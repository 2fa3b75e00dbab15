#!/usr/bin/env bash
# The Debian package, tested as a user gets it: build the .deb, install it with
# dpkg, start the INSTALLED /usr/bin/tollgate on a virtual display with a
# private keyring, check that the window shows the real UI (screenshot in
# test-artifacts/package-installed.png), then remove the package.
# Needs root (or sudo) for dpkg. Every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

# PACKAGE_TEST_DEB=path tests an existing .deb instead of building one.
DEB=${PACKAGE_TEST_DEB:-$(scripts/package.sh | tail -n1)}
[ -f "$DEB" ] || fail "no .deb to test (scripts/package.sh failed?)"
PKG=$(dpkg-deb -f "$DEB" Package)
echo "package-test: $DEB (package $PKG, $(du -h "$DEB" | cut -f1)); Depends: $(dpkg-deb -f "$DEB" Depends)"

WORK=$(mktemp -d /tmp/tollgate-package-test.XXXXXX)
mkdir -p test-artifacts
SHOT=test-artifacts/package-installed.png
rm -f "$SHOT"
cleanup() {
  status=$?
  if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed"; then
    timeout 120 $SUDO dpkg -r "$PKG" >/dev/null || echo "package-test: could not remove $PKG" >&2
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT

echo "package-test: installing"
if ! timeout 300 $SUDO dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1; then
  echo "package-test: dpkg -i reported problems; installing missing dependencies" >&2
  cat "$WORK/dpkg.log" >&2
  DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -f -y -q >&2 ||
    fail "apt-get install -f could not satisfy the package's dependencies"
fi
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed" ||
  fail "dpkg -s $PKG does not report it installed"
[ -x /usr/bin/tollgate ] || fail "/usr/bin/tollgate is missing after installing $PKG"
dpkg -S /usr/bin/tollgate | grep -q "^$PKG:" || fail "/usr/bin/tollgate does not belong to $PKG"

echo "package-test: starting the installed /usr/bin/tollgate under Xvfb"
export WORK SHOT
mkdir -p "$WORK/home" "$WORK/data"
set +e
env -u DISPLAY TOLLGATE_CONSOLE_DATA_DIR="$WORK/data" HOME="$WORK/home" \
  timeout 150 xvfb-run -a -s "-screen 0 1280x800x24" scripts/with-keyring.sh bash -c '
  set -u
  /usr/bin/tollgate >"$WORK/app.log" 2>&1 & APP=$!
  stop() { kill $APP 2>/dev/null; for _ in $(seq 50); do kill -0 $APP 2>/dev/null || break; sleep 0.1; done; kill -9 $APP 2>/dev/null; wait $APP 2>/dev/null; }
  shown=""
  for _ in $(seq 300); do   # 60 s
    if ! kill -0 $APP 2>/dev/null; then
      wait $APP; echo "the app exited (status $?) before showing its window" >"$WORK/verdict"; exit 1
    fi
    if xdotool search --onlyvisible --name "^Tollgate$" >/dev/null 2>&1; then shown=1; break; fi
    sleep 0.2
  done
  if [ -z "$shown" ]; then
    echo "no visible window titled Tollgate within 60 s" >"$WORK/verdict"; stop; exit 1
  fi
  sleep 4
  import -window root "$SHOT" || { echo "screenshot failed" >"$WORK/verdict"; stop; exit 1; }
  if ! kill -0 $APP 2>/dev/null; then
    echo "the app exited after showing its window" >"$WORK/verdict"; wait $APP; exit 1
  fi
  stop
  echo ok >"$WORK/verdict"'
rc=$?
set -e
verdict=$(cat "$WORK/verdict" 2>/dev/null || echo "the virtual display session failed or timed out (exit $rc)")
if [ "$verdict" != ok ]; then
  echo "--- app log" >&2; cat "$WORK/app.log" >&2 2>/dev/null || true
  fail "$verdict"
fi

# A blank window is uniform; a WebKit error page (e.g. "Could not connect to
# localhost": UI not embedded) is white with a little text. The real UI has the
# grey sidebar (#f3f4f6) on the left, text, buttons and borders.
[ -s "$SHOT" ] || fail "empty screenshot"
read -r stddev colours sidebar < <(convert "$SHOT" \
  -format '%[fx:standard_deviation] %k %[pixel:p{4,600}]\n' info:)
echo "package-test: screenshot $SHOT: standard deviation $stddev, $colours distinct colours, sidebar $sidebar"
awk -v s="$stddev" 'BEGIN { exit !(s > 0.02) }' || fail "the screenshot is nearly uniform (blank window?)"
[ "$colours" -gt 50 ] || fail "the screenshot has only $colours colours (blank window?)"
[ "$sidebar" = "srgb(243,244,246)" ] ||
  fail "no console sidebar at the left of the screenshot (error page instead of the UI?): see $SHOT"

echo "package-test: ok: $PKG installs, /usr/bin/tollgate shows its window; removing the package"
