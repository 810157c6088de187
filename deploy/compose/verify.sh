#!/usr/bin/env bash
# Run the scalability guide's verification steps against the running stack (verify.py): each
# replica's /health, /ready and Redis log lines, PgBouncer, haproxy and the UI, logins, the
# agent online with its AgentHub keys and its HA leader key, a ping through every replica
# (local and cross-pod routing), a session started and deleted through haproxy, /metrics.
# Prints one PASS/FAIL line per check; exits 1 if any failed.
# Needs the project's venv (make setup) or a python3 with httpx and redis.
# Env: STREAMSPACE_COMPOSE_ENV (env file, default deploy/compose/.env).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
require_env
python=$REPO/.venv/bin/python
[ -x "$python" ] || python=python3
"$python" -c 'import httpx, redis' 2>/dev/null \
  || die "$python lacks httpx and redis: run make setup (the project's venv) first"
exec "$python" "$COMPOSE_DIR/verify.py" --env-file "$ENV_FILE"
