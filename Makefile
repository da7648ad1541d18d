# wahooks — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One project virtualenv holds every Python tool (moto, cargo-lambda + zig, SAM, cfn-lint):
# cargo-lambda finds zig through the first python3 on PATH, so the venv goes first.
VENV       := $(CURDIR)/.venv
PY         := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
# Tests and the local stack never talk to real AWS: dummy credentials, a fixed region.
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export WAHOOKS_MOTO_SERVER := $(VENV)/bin/moto_server

CARGO_TEST := cargo test --workspace --locked
# Every Lambda: the crate name is the binary name is the folder under target/lambda/.
FUNCTIONS := message-received message-sent message-status instance-connected instance-disconnected chat-presence any fanout

.PHONY: help venv test lint bench build run tail deploy destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed ## create the project virtualenv (moto, cargo-lambda, SAM, linters)

test: venv lint ## run every test (lint, unit, fixtures, CLI, moto-backed integration)
	$(CARGO_TEST)

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

bench: ## criterion benchmarks: parse, verify, pipeline (figures in README)
	cargo bench --workspace --locked

build: venv ## build every Lambda bootstrap for arm64 (cargo lambda, offline)
	cargo lambda build --release --arm64 --locked $(foreach f,$(FUNCTIONS),--package $(f))
	@for f in $(FUNCTIONS); do printf '%-32s %9s bytes\n' target/lambda/$$f/bootstrap $$(stat -c %s target/lambda/$$f/bootstrap); done

run: venv ## the whole system on this machine: moto, tables, queues, receivers on :3000, fanout
	cargo run -q --locked -p wahooks-cli -- serve

tail: ## print events as they reach the local queues (while `make run` runs)
	@test -f .wahooks/env || { echo "start the local stack first: make run"; exit 1; }
	@. .wahooks/env && cargo run -q --locked -p wahooks-cli -- tail $(QUEUES)

clean: ## remove build outputs and the virtualenv
	cargo clean
	rm -rf $(VENV)
