# Tollgate: the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= /var/tmp/tollgate-target
export CARGO_TERM_COLOR ?= never
TARGET := $(CARGO_TARGET_DIR)

.PHONY: run run-xvfb test setup ui desktop gateway server openapi bindings bench bench-console bench-log-cache bench-doctor package lint fmt

## make run: the console, connected to a local demo gateway (SQLite store).
run: setup desktop gateway
	@scripts/run-demo.sh

## The same on a virtual display (no desktop needed); screenshot in test-artifacts/.
run-xvfb: setup desktop gateway
	@scripts/run-xvfb.sh

## make test: every test; .ci/run calls exactly this.
test:
	@scripts/test.sh

setup:
	@scripts/setup.sh

ui:
	npm --prefix ui run build

# The desktop binary with the built UI embedded (what users and the e2e tests run).
desktop: ui
	cargo build -p tollgate-desktop --features custom-protocol

gateway:
	cargo build -p tollgate-gateway -p tollgate-sim-provider

## The gateway as deployed and benchmarked: $(CARGO_TARGET_DIR)/deploy/tollgated
## (the `server` profile: fat LTO, one codegen unit, profile-guided by a
## training run; ~25 minutes on 2 cores the first time, ~12 after a change).
server:
	scripts/build-server.sh

## Regenerate committed artefacts from the Rust code.
openapi: gateway
	$(TARGET)/debug/tollgated openapi > crates/api/openapi.json
	$(TARGET)/debug/tollgated openapi --consumer > crates/api/consumer-openapi.json

bindings:
	cargo test -p tollgate-api -p tollgate-console export_bindings
	cargo check -p tollgate-desktop  # its build script writes ui/src/bindings/commands.ts and the capability

## The installable Debian package of the console.
package: setup
	scripts/package.sh

bench: setup
	scripts/bench.sh

## Console cold start and idle memory (release binary, Xvfb); BENCHMARKS.md "Console".
## Builds the release binary only when it is missing (make package leaves one).
bench-console:
	scripts/bench-console.sh

## The call-log cache: ingest vs a raw SQLite insert, queries at 10M and 50M records.
bench-log-cache:
	scripts/bench-log-cache.sh

## The 402 doctor: time from opening it to a diagnosis, live and from the cache.
bench-doctor:
	scripts/bench-doctor.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	npm --prefix ui run typecheck
	npm --prefix ui run lint
