# wahooks — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One project virtualenv holds every Python tool (moto, cargo-lambda + zig, SAM, cfn-lint):
# cargo-lambda finds zig through the first python3 on PATH, so the venv goes first.
VENV       := $(CURDIR)/.venv
PY         := $(VENV)/bin/python
# checkov pins a boto3 that conflicts with moto's and SAM's, so it has a virtualenv of its own.
CHECKOV_VENV := $(CURDIR)/.venv-checkov
export PATH := $(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export WAHOOKS_MOTO_SERVER := $(VENV)/bin/moto_server
# Tests and the local stack never talk to real AWS: dummy credentials, a fixed region (only
# for those targets: `make deploy` uses your own credentials).
test run tail load infra-check: export AWS_ACCESS_KEY_ID := test
test run tail load infra-check: export AWS_SECRET_ACCESS_KEY := test
test run tail load infra-check: export AWS_REGION := us-east-1
# `make deploy` / `make destroy`: the stack name and region.
STACK  ?= wahooks
REGION ?= $(or $(AWS_REGION),us-east-1)

CARGO_TEST := cargo test --workspace --locked
# Every Lambda: the crate name is the binary name is the folder under target/lambda/.
FUNCTIONS := message-received message-sent message-status instance-connected instance-disconnected chat-presence any fanout social timers media-archiver

# Rust tools cargo installs, kept inside the repository (CI caches nothing outside it).
TOOLS := $(CURDIR)/.tools
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
FUZZ_TARGETS := parse authenticate
FUZZ_SECONDS ?= 60

# The npm projects: the AsyncAPI check and the TypeScript worker (installed with `npm ci`).
SCHEMA_NODE := schema/node_modules/.installed
TS_WORKER   := examples/typescript-worker
TS_NODE     := $(TS_WORKER)/node_modules/.installed
DATAMODEL_CODEGEN := $(VENV)/bin/datamodel-codegen --input schema/wahooks-event.schema.json \
	--input-file-type jsonschema --output-model-type pydantic_v2.BaseModel \
	--target-python-version 3.11 --use-annotated --disable-timestamp --formatters black

.PHONY: help venv test check lint infra-check schema schema-check workers browser-test deploy-test cost bench coldstart build run tail load sim fuzz deploy deploy-guided update destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## create the virtualenvs (moto, cargo-lambda, SAM, cfn-lint; checkov)

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

$(SCHEMA_NODE): schema/package-lock.json
	npm ci --prefix schema --no-audit --no-fund --loglevel=error
	touch $@

$(TS_NODE): $(TS_WORKER)/package-lock.json
	npm ci --prefix $(TS_WORKER) --no-audit --no-fund --loglevel=error
	touch $@

schema: venv $(TS_NODE) ## regenerate the event schema and the workers' types from the Rust types
	cargo run -q --locked -p wahooks-cli -- schema > schema/wahooks-event.schema.json
	$(DATAMODEL_CODEGEN) --output examples/python-worker/wahooks_event.py 2>/dev/null
	npm --prefix $(TS_WORKER) run -s types

schema-check: venv $(SCHEMA_NODE) $(TS_NODE) ## the workers' generated types match the schema; asyncapi.yaml is valid
	@tmp=$$(mktemp -d) && \
	$(DATAMODEL_CODEGEN) --output $$tmp/wahooks_event.py 2>/dev/null && \
	diff -u examples/python-worker/wahooks_event.py $$tmp/wahooks_event.py && \
	(cd $(TS_WORKER) && npx --no-install json2ts --input ../../schema/wahooks-event.schema.json --output $$tmp/wahooks-event.d.ts --no-additionalProperties \
		--bannerComment "$$(head -1 src/wahooks-event.d.ts)") && \
	diff -u $(TS_WORKER)/src/wahooks-event.d.ts $$tmp/wahooks-event.d.ts && \
	rm -rf $$tmp && echo "generated worker types: up to date (make schema regenerates them)"
	cd schema && node check-asyncapi.mjs asyncapi.yaml

# Debian's chromium for the browser test (installed when missing; Playwright drives this binary,
# it downloads no browser).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Debian's chromium package (or set CHROMIUM=<path>)"; exit 1; }
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium \
		|| { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; }

deploy-test: venv ## make deploy, a second (no-op) deploy and make destroy against moto, no TTY
	$(PY) tests/deploy/make_deploy_test.py

browser-test: venv $(CHROMIUM) ## the inspector page in headless chromium (screenshot: target/browser/inspector.png)
	cargo build -q --locked -p wahooks-cli
	$(PY) tests/browser/inspector_test.py --wahooks target/debug/wahooks --moto $(VENV)/bin/moto_server \
		--chromium $(CHROMIUM) --screenshot target/browser/inspector.png

workers: $(TS_NODE) ## build the TypeScript worker (the Python one runs as is)
	npm --prefix $(TS_WORKER) run -s build

test: venv lint infra-check schema-check workers ## run every test (lint, infra and schema checks, unit, fixtures, CLI, moto-backed integration and workers, a short simulation, the browser test, short fuzz)
	$(CARGO_TEST)
	cargo run -q --locked -p wahooks-cli --bin wahooks-dev -- sim --n 20000
	$(MAKE) --no-print-directory browser-test
	$(MAKE) --no-print-directory deploy-test
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15

sim: ## the seeded simulation of the whole pipeline: N=1000000 deliveries (SEED=… replays a run); prints the report
	cargo run -q --locked --profile sim -p wahooks-cli --bin wahooks-dev -- sim --n $(or $(N),1000000) $(if $(SEED),--seed $(SEED))

load: venv ## the load harness: N=20000 deliveries, concurrency 32, faults; prints the report
	cargo run -q --locked -p wahooks-cli --bin wahooks-dev -- load --n $(or $(N),20000) --concurrency 32

$(CARGO_FUZZ):
	cargo install --locked --root $(TOOLS) cargo-fuzz@0.13.2

fuzz: $(CARGO_FUZZ) ## run every fuzz target for FUZZ_SECONDS (default 60), seeded with tests/fixtures
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p shared/fuzz/corpus/$$t && cp tests/fixtures/*/*.json shared/fuzz/corpus/$$t/ && \
		echo "fuzz $$t for $(FUZZ_SECONDS) s" && \
		(cd shared && PATH=$(TOOLS)/bin:$$PATH cargo fuzz run --sanitizer none $$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==|SUMMARY|thread)" ; \
			exit $${PIPESTATUS[0]}) || exit 1; \
	done

infra-check: venv ## cfn-lint (warnings fail), sam validate --lint, checkov (skips: infra/checkov.yaml)
	cfn-lint infra/template.yaml
	sam validate --lint --template infra/template.yaml --region $(AWS_REGION)
	$(CHECKOV_VENV)/bin/checkov --config-file infra/checkov.yaml -f infra/template.yaml

check: ## the inner loop (no moto, no Python): rustfmt, clippy, unit tests, fixtures, docs, schema, CLI parse/sign
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --locked --workspace --lib --bins
	cargo test --locked -p wahooks --tests
	cargo test --locked -p wahooks-consumer
	cargo test --locked --test it -- docs:: parse_fixtures:: schema:: write_units::
	cargo test --locked -p wahooks-cli --test commands -- cli_parse:: cli_sign_verify::

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

cost: venv ## what a million events cost, measured on the local stack (the cost table of docs/performance.md)
	cargo run -q --locked -p wahooks-cli --bin wahooks-dev -- cost

bench: ## criterion benchmarks: parse, verify, pipeline (bench and release profiles), fanout, Standard Webhooks vs svix (figures in docs/performance.md)
	cargo bench --workspace --locked --features wahooks/test-util
	WAHOOKS_BENCH_PROFILE=release cargo bench --locked -p wahooks --features local --bench pipeline --profile release -- --save-baseline release-profile
	cd shared/bench-svix && cargo bench --locked

coldstart: venv ## a receiver's cold start (init, first and warm requests): its release build against a local Lambda Runtime API (figures in docs/performance.md)
	cargo build --release --locked -p message-received
	cargo run -q --locked -p wahooks-cli --bin wahooks-dev -- coldstart --bootstrap target/release/message-received

build: venv ## build every Lambda bootstrap for arm64 (cargo lambda, offline)
	cargo lambda build --release --arm64 --locked $(foreach f,$(FUNCTIONS),--package $(f))
	@for f in $(FUNCTIONS); do printf '%-32s %9s bytes\n' target/lambda/$$f/bootstrap $$(stat -c %s target/lambda/$$f/bootstrap); done

run: venv ## the whole system on this machine: moto, tables, queues, receivers on :3000, fanout
	cargo run -q --locked -p wahooks-cli -- serve

tail: ## print events as they reach the local queues (while `make run` runs)
	@test -f .wahooks/env || { echo "start the local stack first: make run"; exit 1; }
	@. .wahooks/env && cargo run -q --locked -p wahooks-cli -- tail $(QUEUES)

# `make deploy` needs nobody at the keyboard: no prompts (--no-confirm-changeset), SAM's managed
# artifact bucket (--resolve-s3) unless S3_BUCKET names one, and infra/samconfig.toml (what
# `make deploy-guided` writes) read when it exists. PARAMS="Name=value …" overrides parameters.
DEPLOY_FLAGS = --stack-name $(STACK) --region $(REGION) \
	--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-confirm-changeset --no-fail-on-empty-changeset \
	$(if $(S3_BUCKET),--s3-bucket $(S3_BUCKET),--resolve-s3) $(if $(PARAMS),--parameter-overrides $(PARAMS))

deploy: venv ## sam build + sam deploy to STACK in REGION, unattended (PARAMS="Name=value …", S3_BUCKET=…)
	cd infra && sam build --template template.yaml
	cd infra && sam deploy $(DEPLOY_FLAGS) < /dev/null

deploy-guided: venv ## sam build + sam deploy --guided (answers saved in infra/samconfig.toml for make deploy)
	cd infra && sam build --template template.yaml
	cd infra && sam deploy --guided --stack-name $(STACK) --region $(REGION) --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND

# `make update F=<function>`: one function's new code, straight to the deployed stack (seconds,
# not a stack update). The next `make deploy` of changed code makes the stack authoritative again.
UPDATE_BUILD_FLAGS ?= --release
update: venv ## push one function's code to the deployed stack with cargo lambda deploy (F=message-received …)
	@test -n "$(filter $(F),$(FUNCTIONS))" || { echo "usage: make update F=<function> (one of: $(FUNCTIONS))"; exit 1; }
	cargo lambda build $(UPDATE_BUILD_FLAGS) --arm64 --locked --bin $(F)
	name=$$($(PY) infra/function_name.py $(STACK) $(REGION) $(F)) && \
	cargo lambda deploy --region $(REGION) --binary-name $(F) $(if $(AWS_ENDPOINT_URL),--endpoint-url $(AWS_ENDPOINT_URL)) "$$name"

destroy: venv ## delete the stack, no prompts (the two tables and the body bucket are retained: delete them by hand if you mean it)
	cd infra && sam delete --stack-name $(STACK) --region $(REGION) --no-prompts

clean: ## remove build outputs and the virtualenvs
	cargo clean
	rm -rf $(VENV) $(CHECKOV_VENV) infra/.aws-sam schema/node_modules $(TS_WORKER)/node_modules $(TS_WORKER)/dist
