# Sourced by scripts whose tests need PostgreSQL: starts one throwaway server
# (tollgate-test-postgres: initdb in a temporary directory, an unprivileged
# user, a free loopback port) for the whole run and exports its admin URL as
# TOLLGATE_TEST_POSTGRES; each test makes its own database on it. The server
# stops when the calling script exits.
start_test_postgres() {
  cargo build -q -p tollgate-test-postgres
  local url_file
  url_file=$(mktemp -u /tmp/tollgate-pg-url.XXXXXX)
  "$CARGO_TARGET_DIR/debug/tollgate-test-postgres" "$url_file" &
  TEST_POSTGRES_PID=$!
  TEST_POSTGRES_URL_FILE=$url_file
  trap 'rm -f "$TEST_POSTGRES_URL_FILE"; wait "$TEST_POSTGRES_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    [ -s "$url_file" ] && break
    kill -0 "$TEST_POSTGRES_PID" 2>/dev/null || { echo "the test PostgreSQL server did not start" >&2; return 1; }
    sleep 0.1
  done
  [ -s "$url_file" ] || { echo "the test PostgreSQL server did not start within 30 s" >&2; return 1; }
  TOLLGATE_TEST_POSTGRES=$(cat "$url_file")
  export TOLLGATE_TEST_POSTGRES
}

# bench_database NAME: a test server (as above) and a fresh database NAME on
# it, for a benchmark; its URL in BENCH_DATABASE_URL. At exit the caller's
# `cleanup` function runs first, then the server stops.
bench_database() {
  start_test_postgres
  trap 'cleanup; rm -f "$TEST_POSTGRES_URL_FILE"; wait "$TEST_POSTGRES_PID" 2>/dev/null || true' EXIT
  psql -q "$TOLLGATE_TEST_POSTGRES" -c "CREATE DATABASE $1"
  BENCH_DATABASE_URL="${TOLLGATE_TEST_POSTGRES%/*}/$1"
}
