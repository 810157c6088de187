#!/usr/bin/env bash
# `make test`: start the real services, then lint, type-check, layer-check and run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/test-services.sh start)"
mkdir -p artifacts
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports --no-cache >/dev/null
.venv/bin/pytest -q -p no:cacheprovider "$@"
