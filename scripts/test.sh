#!/usr/bin/env bash
# Every test of the project, in order of cost. Called by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
step() { printf '\n=== %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
npm --prefix ui run typecheck
npm --prefix ui run lint

step "UI unit tests (vitest): card checks, formats, the prompt studio's draft"
npm --prefix ui run test

step "build: UI, gateway, desktop (UI embedded)"
npm --prefix ui run build
cargo build -p tollgate-gateway -p tollgate-sim-provider
cargo build -p tollgate-desktop --features custom-protocol

step "Rust tests: real tollgated processes, real SQLite files, a real PostgreSQL server, the real Secret Service"
source scripts/lib/postgres.sh
start_test_postgres
scripts/with-keyring.sh cargo nextest run --workspace --exclude tollgate-desktop --no-fail-fast --test-threads 4

step "the gateway's and the console's suites again, every gateway on PostgreSQL"
TOLLGATE_TEST_STORE=postgres scripts/with-keyring.sh cargo nextest run -p tollgate-gateway -p tollgate-console --no-fail-fast --test-threads 4

step "the date-sensitive suites at five awkward dates (libfaketime)"
scripts/test-dates.sh

step "the data plane on one core (tollgated then runs tokio's single-threaded scheduler)"
taskset -c 0 cargo nextest run -p tollgate-gateway --test dataplane --test call_logs --no-fail-fast --test-threads 2

step "generated files are current"
GENERATED="ui/src/bindings capabilities crates/api/openapi.json crates/api/consumer-openapi.json"
if [ -n "$(git status --porcelain -- $GENERATED)" ]; then
  git status --porcelain -- $GENERATED
  echo "generated files are stale: run 'make bindings openapi' and commit the result" >&2
  exit 1
fi

step "the API contract: schemathesis, every check, against a real gateway (bounded)"
scripts/test-contract.sh 180

step "official SDKs as judges: openai against the gateway, stripe against the Stripe test fixture"
"${TOLLGATE_VENV:-/var/tmp/tollgate-venv}/bin/pytest" -v -p no:cacheprovider tests/sdk

if [ -d tests/e2e ]; then
  step "end-to-end: WebDriver on the real desktop binary under Xvfb"
  scripts/e2e.sh
fi

if [ -x scripts/package-test.sh ]; then
  step "Debian package: build, install with dpkg, start the installed app"
  scripts/package-test.sh
fi

step "secrets: none in what the tests left behind"
scripts/scan-secrets.sh
