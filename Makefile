# StreamSpace: `make run` serves the product on its embedded default, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
UV := .tools/bin/uv
export STREAMSPACE_HOST ?= 127.0.0.1
export STREAMSPACE_PORT ?= 8080
export STREAMSPACE_DATA_DIR ?= ./data

.PHONY: run test test-lowest test-pgbouncer setup services check lint typecheck clean images ui

$(UV):
	@scripts/bootstrap-tools.sh

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

NOVNC := web/viewer/node_modules/@novnc/novnc/core/rfb.js

$(NOVNC): web/viewer/package.json web/viewer/package-lock.json
	@command -v npm >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm)
	npm ci --prefix web/viewer --no-audit --no-fund --silent
	@touch $@

# The web UI (ui/): dependencies when the lockfile changes, a build when any source is newer
# than the last one, so `make run` always serves the UI of the checkout.
UI_DEPS := ui/node_modules/.installed
UI_BUILD := ui/dist/index.html
UI_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) ui/index.html ui/vite.config.ts \
	$(wildcard ui/tsconfig*.json) ui/package.json

$(UI_DEPS): ui/package.json ui/package-lock.json
	@command -v npm >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm)
	npm ci --prefix ui --no-audit --no-fund --silent
	@touch $@

$(UI_BUILD): $(UI_DEPS) $(UI_SOURCES)
	npm --prefix ui run build --silent
	@touch $@

ui: $(UI_BUILD)

setup: $(VENV)/.synced $(NOVNC) $(UI_BUILD)

run: setup
	$(VENV)/bin/streamspace up

services:
	@scripts/test-services.sh start

test: setup
	@scripts/run-tests.sh

# Unit and integration tests on the lowest versions pyproject.toml's bounds admit (CI runs it).
test-lowest: setup
	@scripts/test-lowest.sh

# Integration tests with the app behind PgBouncer in transaction pooling mode (CI runs it).
test-pgbouncer: setup
	@scripts/test-pgbouncer.sh

check: setup
	$(VENV)/bin/ruff check src tests bench deploy
	$(VENV)/bin/ruff format --check src tests bench deploy
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict deploy/compose/verify.py
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python scripts/gen-settings-doc.py --check
	cd ui && npm run --silent typecheck && npm run --silent check:api && npm run --silent lint && npm run --silent format:check

images:
	images/build.sh

clean:
	rm -rf $(VENV) .tools data .pytest_cache ui/dist ui/node_modules
