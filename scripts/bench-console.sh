#!/usr/bin/env bash
# `make bench-console`: the console's cold start and idle memory, measured on
# the release binary (UI embedded) on a virtual display with a private keyring.
#
#  - cold start: from exec to the first look at the screen that shows the UI
#    (the sidebar's colour at its top-left and the "Tollgate" brand text in the
#    220x60 corner), probed every 20 ms; N runs (BENCH_RUNS, default 10) after
#    one unmeasured warm-up run, each with a fresh console data directory and
#    HOME. The OS file cache is warm (caches are not dropped: other work shares
#    the machine); "cold" means a new process, new WebKit processes, empty data.
#  - idle memory: PSS (from /proc/PID/smaps_rollup) of the app process and all
#    its descendants (WebKitWebProcess, WebKitNetworkProcess), 10 s after the UI
#    has painted (BENCH_IDLE_SECONDS), with an empty instance registry.
#
# Prints a markdown table on stdout. Bounded: every wait has a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
BIN=${TOLLGATE_BIN:-$CARGO_TARGET_DIR/release/tollgate}

if [ "${1:-}" != --inside ]; then
  for tool in xvfb-run python3 dbus-run-session gnome-keyring-daemon; do
    command -v "$tool" >/dev/null || { echo "bench-console: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
  done
  if [ ! -x "$BIN" ]; then
    echo "bench-console: $BIN is missing; building the release binary with the UI embedded" >&2
    [ -f ui/dist/index.html ] || npm --prefix ui run build >&2
    cargo build --release -p tollgate-desktop --features custom-protocol >&2
  fi
  export BIN
  exec env -u DISPLAY timeout 300 xvfb-run -a -s "-screen 0 1280x800x24" \
    scripts/with-keyring.sh "$0" --inside
fi

# ---- inside Xvfb and a private D-Bus session with an unlocked keyring -------
RUNS=${BENCH_RUNS:-10}
IDLE=${BENCH_IDLE_SECONDS:-10}
WORK=$(mktemp -d /tmp/tollgate-bench-console.XXXXXX)
APP=""
trap 'stop_app; rm -rf "$WORK"' EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }

descendants() { # every descendant pid of $1, from the ppid field of /proc/*/stat
  local root=$1
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$root" '
    { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " "); parent[pid] = f[2] }
    END { set[root] = 1; changed = 1
          while (changed) { changed = 0
            for (p in parent) if (!(p in set) && (parent[p] in set)) { set[p] = 1; changed = 1; print p } } }'
}

stop_app() {
  [ -n "$APP" ] || return 0
  local kids
  kids=$(descendants "$APP" || true)
  kill "$APP" $kids 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$APP" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$APP" $kids 2>/dev/null || true
  wait "$APP" 2>/dev/null || true
  APP=""
}

# The rendered UI: the top-left corner of the screen shows the sidebar's colour
# #f3f4f6 (the bare Xvfb root window is black; a white page or an error page
# is not that grey) and the "Tollgate" brand text (many anti-aliased shades)
# in its 220x60 corner. Polled every 20 ms with XGetImage through libX11
# (about 1 ms a probe, against about 80 ms for an ImageMagick `import`).
# Prints the wall-clock time in ms at which it first saw the rendered UI.
POLLER='
import ctypes, os, sys, time
pid, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
x = ctypes.CDLL("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XDefaultRootWindow.restype = ctypes.c_ulong
x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x.XGetImage.restype = ctypes.c_void_p
x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                        ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
x.XFree.argtypes = [ctypes.c_void_p]
class XImage(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("width", "height", "xoffset", "format")] + \
        [("data", ctypes.c_void_p)] + [(n, ctypes.c_int) for n in (
        "byte_order", "bitmap_unit", "bitmap_bit_order", "bitmap_pad", "depth",
        "bytes_per_line", "bits_per_pixel")]
dpy = x.XOpenDisplay(None)
if not dpy:
    sys.exit("poller: cannot open the X display")
root = x.XDefaultRootWindow(dpy)
W, H, SIDEBAR = 220, 60, bytes([0xF6, 0xF4, 0xF3])  # #f3f4f6 as B, G, R
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("poller: the app exited")
    p = x.XGetImage(dpy, root, 0, 0, W, H, 0xFFFFFFFFFFFFFFFF, 2)  # ZPixmap
    if p:
        img = XImage.from_address(p)
        assert img.bits_per_pixel == 32, img.bits_per_pixel
        buf = ctypes.string_at(img.data, img.bytes_per_line * H)
        x.XFree(img.data); x.XFree(p)
        at = 4 * img.bytes_per_line + 4 * 4  # pixel (4, 4)
        if buf[at:at + 3] == SIDEBAR and len({buf[i:i + 3] for i in range(0, len(buf), 4)}) > 8:
            print(time.time_ns() // 1000000)
            sys.exit(0)
    time.sleep(0.02)
sys.exit("poller: no rendered UI before the deadline")
'

start_app() { # $1: run name; sets APP and T0
  mkdir -p "$WORK/$1/home"
  T0=$(now_ms)
  HOME="$WORK/$1/home" TOLLGATE_CONSOLE_DATA_DIR="$WORK/$1/data" "$BIN" >"$WORK/$1.log" 2>&1 &
  APP=$!
}

wait_painted() { # prints ms from T0 to the first rendered UI, or fails after 60 s
  local t1
  if ! t1=$(python3 -c "$POLLER" "$APP" 60); then
    echo "bench-console: no rendered UI; app log:" >&2
    cat "$WORK/$RUN.log" >&2
    return 1
  fi
  echo $((t1 - T0))
}

# ---- cold start --------------------------------------------------------------
times=()
for i in $(seq 0 "$RUNS"); do
  RUN="run$i"
  start_app "$RUN"
  t=$(wait_painted)
  stop_app
  if [ "$i" -eq 0 ]; then
    echo "bench-console: warm-up run: ${t} ms (not counted)" >&2
  else
    echo "bench-console: run $i: ${t} ms" >&2
    times+=("$t")
  fi
done
read -r MIN MEDIAN P95 MAX < <(printf '%s\n' "${times[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END { n = NR
        med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        i = int(0.95 * n + 0.999999); if (i < 1) i = 1; if (i > n) i = n   # nearest rank
        printf "%d %d %d %d\n", v[1], med, v[i], v[n] }')

# ---- idle memory -------------------------------------------------------------
RUN=idle
start_app "$RUN"
wait_painted >/dev/null
sleep "$IDLE"
kill -0 "$APP" 2>/dev/null || { echo "bench-console: the app exited while idle" >&2; exit 1; }
PSS_KB=0; RSS_KB=0; PROCS=()
for p in "$APP" $(descendants "$APP"); do
  [ -r "/proc/$p/smaps_rollup" ] || continue
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")
  rss=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup")
  name=$(basename "$(readlink "/proc/$p/exe" || cat "/proc/$p/comm")")
  PSS_KB=$((PSS_KB + pss)); RSS_KB=$((RSS_KB + rss))
  PROCS+=("$name $((pss / 1024)) MiB")
  echo "bench-console: idle: $name (pid $p): PSS $((pss / 1024)) MiB, RSS $((rss / 1024)) MiB" >&2
done
stop_app
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
PROC_LIST=$(IFS=,; echo "${PROCS[*]}" | sed 's/,/, /g')

cat <<EOF
| Console (release binary, Xvfb 1280x800) | Figure |
|---|---|
| Cold start to first painted UI, ms ($RUNS runs) | min $MIN / median $MEDIAN / p95 $P95 / max $MAX |
| Idle memory after ${IDLE} s, PSS of the app and its WebKit processes | $(mib $PSS_KB) MiB ($PROC_LIST; RSS sum $(mib $RSS_KB) MiB) |

Command: \`make bench-console\` (scripts/bench-console.sh)
EOF
