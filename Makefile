# DeAI OS — the human interface. `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_OPTS := --experimental-vm-modules --openssl-legacy-provider
JEST := node $(NODE_OPTS) node_modules/jest/bin/jest.js

.PHONY: help deps services generate build typecheck lint format buf-lint buf-breaking \
        test test-ts test-py trainer-deps test-slashing-property chromium bench-ledger bench-da bench-match bench-slashing bench-ingest bench-repair bench-encode bench-train bench-recovery helm-check demo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

node_modules/.deps-stamp: package.json package-lock.json $(wildcard packages/*/package.json services/*/package.json tools/*/package.json)
	npm ci --no-audit --no-fund
	@node -e 'require("@ronomon/reed-solomon").create(2, 1)' 2>/dev/null || { \
	  echo "deps: the native Reed-Solomon addon did not build (npm must run its install script: package.json allowScripts; needs python3, make, g++)" >&2; exit 1; }
	@touch $@

deps: node_modules/.deps-stamp ## Install npm dependencies (npm ci) when the lockfile changed

services: deps ## Start Postgres and NATS JetStream on localhost if they are not running
	@bash infra/local/services.sh

generate: deps ## Generate TypeScript from proto/ (buf + protoc-gen-es, all from npm)
	npx turbo run generate

build: deps ## Build every workspace
	npx turbo run build

typecheck: deps ## tsc --noEmit over sources and tests
	npx turbo run typecheck
	npx tsc -p infra/helm/tsconfig.json

buf-lint: deps ## buf lint proto/
	npx buf lint proto

buf-breaking: deps ## buf breaking against the previous commit (skipped when it had no proto/)
	@if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto/buf.yaml 2>/dev/null; then \
	  npx buf breaking proto --against '.git#ref=HEAD~1,subdir=proto' && echo "buf breaking: no breaking change against HEAD~1"; \
	else echo "buf breaking: no earlier proto/ to compare against"; fi

lint: deps buf-lint ## ESLint (type-aware) + Prettier + buf lint
	npx eslint . --max-warnings 0
	npx prettier --check .

format: deps ## Apply Prettier and ESLint fixes
	npx prettier --write .
	npx eslint . --fix

helm-check: deps ## helm lint + template against golden files
	bash infra/helm/check.sh

chromium: ## Debian's chromium for the dashboard's browser test (installs it when missing; never a test tool's browser download)
	@dpkg-query -W -f='$${Status}' chromium 2>/dev/null | grep -q "install ok installed" || { \
	  echo "chromium: installing chromium"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; \
	}
	@test -x /usr/bin/chromium || { echo "chromium: /usr/bin/chromium is missing (apt-get install chromium)" >&2; exit 1; }

test-ts: services build chromium trainer-deps ## jest: unit and integration tests (real Postgres, NATS, in-process S3)
	@mkdir -p .turbo
	@rm -f .turbo/jest-results.json
	$(JEST) --json --outputFile=.turbo/jest-results.json

trainer-deps: ## Python + PyTorch from Debian for the trainer (the operator's local-runtime jest test runs the real trainer)
	$(MAKE) -C services/trainer deps

test-py: ## trainer tests (Python + PyTorch from Debian; installs them when missing)
	@rm -f .turbo/pytest-results.xml; mkdir -p .turbo
	$(MAKE) -C services/trainer deps
	PYTEST_ADDOPTS="--junitxml=$(CURDIR)/.turbo/pytest-results.xml" $(MAKE) -C services/trainer test

test-slashing-property: services build ## Slashing property test with 100,000 randomized submissions (make test runs 1,000; SLASHING_PROPERTY_COUNT=n)
	SLASHING_PROPERTY_COUNT=$${SLASHING_PROPERTY_COUNT:-100000} $(JEST) services/slashing/test/slashing-app.test.ts -t property

bench-ledger: services build ## Ledger appends/s + proof latency vs raw Postgres INSERTs (BENCH_QUICK=1 for ~1 min)
	npx tsc -p services/ledger/bench/tsconfig.json
	node services/ledger/bench/dist/bench.js

bench-da: services build ## DA sampling: verified shards/s vs raw GETs, detection p50/p99, miss rate vs epsilon, audit bytes, chaos false evidence (BENCH_QUICK=1 for ~1 min)
	npx tsc -p services/da-sampler/bench/tsconfig.json
	node services/da-sampler/bench/dist/da.js

bench-match: services build ## Marketplace durable gang matches/s + p50/p99 (10,000 offers, 4 × 8 GPUs) vs raw Postgres single-row UPDATEs (BENCH_QUICK=1 for ~1 min)
	npx tsc -p services/marketplace/bench/tsconfig.json
	node services/marketplace/bench/dist/bench/bench.js

bench-slashing: services build ## Slashing evidence verified+applied/s vs raw Ed25519 verify/s (BENCH_EVIDENCE=n)
	npx tsc -p services/slashing/bench/tsconfig.json
	node services/slashing/bench/dist/bench/bench.js

bench-repair: services build ## DA repair MiB/s vs plain download of the same bytes, bytes read per rebuilt shard (BENCH_QUICK=1 for ~30 s)
	npx tsc -p services/da-sampler/bench/tsconfig.json
	node --openssl-legacy-provider services/da-sampler/bench/dist/repair.js

bench-ingest: services build ## Ingestion MiB/s end to end vs raw S3 PUTs, encode, RSS, download/reconstruct (BENCH_QUICK=1 for ~1 min)
	npx tsc -p services/ingestion/bench/tsconfig.json
	node --openssl-legacy-provider services/ingestion/bench/dist/bench.js

bench-encode: build ## Ingestion encode throughput vs SHA-256 (part of the coming bench-ingest)
	node services/ingestion/dist/bench/encode-throughput.js

bench-train: ## DiLoCoX vs DiLoCo vs AllReduce over shaped links (BENCH_QUICK=1 for a short run)
	$(MAKE) -C services/trainer deps bench

bench-recovery: ## Elastic groups: one group's failure -> training again vs a full-job restart, tokens lost, time to add a group
	$(MAKE) -C services/trainer deps bench-recovery

test: deps services generate build lint buf-breaking typecheck helm-check test-ts test-py ## Everything CI runs
	@node tools/ci/summary.mjs

demo: deps services build ## The whole story on one machine
	node --openssl-legacy-provider tools/demo/dist/main.js

clean: ## Remove build outputs
	rm -rf node_modules/.deps-stamp packages/*/dist services/*/dist tools/*/dist .turbo packages/contracts/src/gen packages/contracts/src/index.ts
