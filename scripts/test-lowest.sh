#!/usr/bin/env bash
# The unit and integration tests once more, on the lowest versions pyproject.toml's bounds
# admit for the project's own dependencies (uv's lowest-direct resolution; the test tools stay
# at their locked versions). Catches a lower bound that admits a version the code cannot use.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.tools/bin/uv
VENV=.venv-lowest
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
eval "$(scripts/test-services.sh start)"
"$UV" export --only-group dev --frozen --no-hashes --no-emit-project --quiet >"$WORK/dev.txt"
{
  echo "-e ."
  grep -E '^(pytest|pytest-asyncio|pytest-timeout|hypothesis|schemathesis|asyncvnc|kubernetes-validate)==' "$WORK/dev.txt"
} >"$WORK/requirements.in"
"$UV" pip compile "$WORK/requirements.in" --resolution lowest-direct --python 3.11 --quiet \
  -o "$WORK/lowest.txt"
echo "[lowest] the project's dependencies at their lowest admitted versions:"
grep -E '^(fastapi|starlette|uvicorn|websockets|redis|hiredis|sqlalchemy|alembic|asyncpg|aiosqlite|pydantic|pydantic-settings|httpx|aiodocker|kubernetes-asyncio|prometheus-client|pyjwt|argon2-cffi|typer|rich|uvloop|joserfc|ldap3|pyotp|segno)==' \
  "$WORK/lowest.txt" | tr '\n' ' '
echo
"$UV" venv --quiet --allow-existing --python 3.11 "$VENV"
"$UV" pip sync --quiet --python "$VENV/bin/python" "$WORK/lowest.txt"
# Old releases of a dependency warn about newer ones beside them (typer 0.12 about click
# 8.3's deprecations): shown here, not failures; every other warning still fails a test.
"$VENV/bin/pytest" -q -p no:cacheprovider -W default::DeprecationWarning \
  -W default::PendingDeprecationWarning tests/unit tests/integration "$@"
