# StreamSpace: `make run` serves the product on its embedded default, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
UV := .tools/bin/uv
export STREAMSPACE_HOST ?= 127.0.0.1
export STREAMSPACE_PORT ?= 8080
export STREAMSPACE_DATA_DIR ?= ./data

.PHONY: run test setup services check lint typecheck clean images

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

setup: $(VENV)/.synced $(NOVNC)

run: setup
	$(VENV)/bin/streamspace up

services:
	@scripts/test-services.sh start

test: setup
	@scripts/run-tests.sh

check: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

images:
	images/build.sh

clean:
	rm -rf $(VENV) .tools data .pytest_cache
