#!/usr/bin/env bash
# `make test`: start the real services, then lint, type-check, layer-check, the UI's own checks
# (types, API drift, ESLint, Prettier, Vitest) and pytest (browser tests use the UI that
# `make setup` built), the test modules spread over parallel workers.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/test-services.sh start)"
mkdir -p artifacts
.venv/bin/ruff check src tests bench deploy
.venv/bin/mypy
.venv/bin/mypy --strict deploy/compose/verify.py
.venv/bin/lint-imports --no-cache >/dev/null
(cd ui && npm run --silent typecheck && npm run --silent check:api && npm run --silent lint \
    && npm run --silent format:check && npm test --silent)
# Test modules run in parallel workers (pytest-xdist), each module whole on one worker so its
# fixtures are built once; STREAMSPACE_TEST_WORKERS=0 runs them in this process instead.
workers=${STREAMSPACE_TEST_WORKERS:-2}
parallel=()
[ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadfile)
.venv/bin/pytest -q -p no:cacheprovider --durations=25 "${parallel[@]}" "$@"
