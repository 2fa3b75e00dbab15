#!/usr/bin/env bash
# The date-sensitive suites at dates that break calendar arithmetic: a new
# year, the end of February (and a leap day), the end of a 31-day month, the
# last seconds of a year. Each test process runs under libfaketime (Debian's
# `faketime`, as cargo's target runner: scripts/lib/faketime-runner.sh),
# whose clock starts at the date and keeps running; every process a test
# starts (the real `tollgated`s among them) shares that clock.
# Called by scripts/test.sh after the test binaries are built.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}

DATES=(
  "2027-01-01 00:00:30"
  "2027-02-28 23:59:30"
  "2028-02-29 12:00:00"
  "2027-03-31 23:59:50"
  "2027-12-31 23:59:50"
)

# Console alerts and doctor; the gateway's billing lifecycle, renewals,
# subscriptions, prompt API sunsets and log retention.
FILTER='
  binary_id(tollgate-console::alerts_integration)
  | binary_id(tollgate-console::doctor_integration)
  | (binary_id(tollgate-console) & test(/^(alerts|doctor)::/))
  | binary_id(tollgate-gateway::renewals)
  | binary_id(tollgate-gateway::subscriptions_api)
  | binary_id(tollgate-gateway::billing_api)
  | binary_id(tollgate-gateway::prompt_apis_api)
  | binary_id(tollgate-gateway::call_logs)
  | (binary_id(tollgate-gateway::routing) & test(/sunset/))
  | (binary_id(tollgate-gateway) & test(/^(lifecycle|dataplane::hot)::/))
'

# The runner's clock must really be the date asked for.
[ "$(TOLLGATE_FAKE_DATE="2028-02-29 12:00:00" scripts/lib/faketime-runner.sh date -u +%F)" = 2028-02-29 ] ||
  { echo "test-dates: faketime does not move the clock" >&2; exit 1; }

for date in "${DATES[@]}"; do
  printf '\n--- the date-sensitive suites on %s\n' "$date"
  TOLLGATE_FAKE_DATE="$date" CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/lib/faketime-runner.sh" \
    scripts/with-keyring.sh cargo nextest run --workspace --exclude tollgate-desktop --no-fail-fast \
    --test-threads 4 -E "$FILTER"
done
