#!/usr/bin/env bash
# Runs a command in a private D-Bus session with a fresh, unlocked GNOME
# Keyring (the Secret Service), so tests use the real OS keyring without
# touching the user's own. Keyrings live in a throw-away XDG_DATA_HOME.
set -euo pipefail
export XDG_DATA_HOME=${XDG_DATA_HOME_FOR_KEYRING:-$(mktemp -d /tmp/tollgate-keyring.XXXXXX)}
exec dbus-run-session -- bash -c '
  echo -n "tollgate-throwaway" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  # Wait (up to 10 s) until the unlocked daemon owns the Secret Service name:
  # a client asking sooner makes D-Bus start a second, locked daemon.
  for _ in $(seq 100); do
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
      grep -q "boolean true" && break
    sleep 0.1
  done
  daemon=$(pgrep -n -x gnome-keyring-d || true)
  status=0; "$@" || status=$?
  # Say so when the daemon did not last the run: later keyring errors
  # ("locked collection", "recipient disconnected") come from a replacement.
  if [ -n "$daemon" ] && ! kill -0 "$daemon" 2>/dev/null; then
    echo "with-keyring: the keyring daemon (pid $daemon) exited during the run" >&2
  fi
  exit $status' _ "$@"
