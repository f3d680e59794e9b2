# Smart Ticket: `make run` starts the product, `make test` runs every test.
# Builds go to a target folder outside the clone, so CI and fresh clones reuse them.
export CARGO_TARGET_DIR ?= /var/tmp/smart-ticket-target

.PHONY: run test release lint bench-http bench-pipeline load soak

## Start Smart Ticket on SQLite at http://localhost:3000 (data in ./data).
# The binary is built as the tests build it (dev-dependencies switch on features of shared crates, so a
# `cargo run` of the binary alone would compile most of the tree a second time): after `make test`, `make run`
# starts at once, and after `make run`, `make test` only runs.
run:
	scripts/fetch-model
	cargo test --workspace --no-run
	"$(CARGO_TARGET_DIR)/debug/smart-ticket" serve

## Every test: unit, property and black-box API tests on SQLite and PostgreSQL (started if needed).
test:
	scripts/test

## Optimised binary at $(CARGO_TARGET_DIR)/release/smart-ticket.
release:
	cargo build --release --bin smart-ticket

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## HTTP latency/throughput with wrk against a release build (see scripts/bench-http).
bench-http: release
	scripts/bench-http

## Filed-to-emailed latency at 50 tickets/s for 60 s (SQLite, PostgreSQL) and jobs/s with 1 vs 2 workers.
bench-pipeline: release
	scripts/fetch-model
	scripts/bench-pipeline latency sqlite 50 60
	scripts/bench-pipeline latency postgres 50 60
	scripts/bench-pipeline jobs 20000

## Mixed load (log in, create, list, get, comment; 64 connections, 60 s) on SQLite and PostgreSQL; fails on any error.
load: release
	scripts/load

## 10 minutes at 100 tickets/s with the embedded engine, serve's memory sampled every 10 s.
soak: release
	scripts/fetch-model
	scripts/bench-pipeline soak sqlite 100 600
