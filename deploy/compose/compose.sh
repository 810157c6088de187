#!/usr/bin/env bash
# docker-compose with this stack's file, project name and env file, e.g.
#   deploy/compose/compose.sh ps
#   deploy/compose/compose.sh logs -f api-1
#   deploy/compose/compose.sh --profile scale-out up -d api-4
# Env: STREAMSPACE_COMPOSE_ENV (env file, default deploy/compose/.env).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
require_env
compose "$@"
