#!/usr/bin/env bash
# Stop the stack and remove its containers and network.
#   deploy/compose/down.sh            keeps the data: the PostgreSQL and Redis volumes, and the
#                                     session containers the agent started (they keep running;
#                                     the next up.sh's agent adopts them)
#   deploy/compose/down.sh --volumes  removes the data too: the volumes, the session containers
#                                     and home volumes of this stack's agent, the sessions network
# .env (secrets, the agent's key) is kept either way; delete it for new secrets after --volumes.
# Env: STREAMSPACE_COMPOSE_ENV (env file, default deploy/compose/.env).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

remove_sessions() {
  local agent label ids
  agent=$(env_get AGENT_ID)
  [ -n "$agent" ] || return 0
  label="label=streamspace.agent=$agent"
  ids=$(docker ps -aq --filter "$label")
  if [ -n "$ids" ]; then
    log "removing the session containers of agent $agent"
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
  fi
  ids=$(docker volume ls -q --filter "$label")
  if [ -n "$ids" ]; then
    log "removing the home volumes of agent $agent"
    # shellcheck disable=SC2086
    docker volume rm -f $ids >/dev/null
  fi
  # The sessions network, unless another agent's sessions still use it.
  docker network rm "$(env_get SESSIONS_NETWORK)" >/dev/null 2>&1 || true
  docker network rm "$(env_get SESSIONS_NETWORK)-noegress" >/dev/null 2>&1 || true
}

main() {
  local volumes=0 arg sessions
  for arg in "$@"; do
    case "$arg" in
      -v|--volumes) volumes=1 ;;
      -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument '$arg' (try --help)" ;;
    esac
  done
  require_tools
  require_env
  if ((volumes)); then
    log "stopping project $PROJECT and removing its volumes"
    compose --profile scale-out down --volumes --remove-orphans
    remove_sessions
  else
    log "stopping project $PROJECT (volumes kept)"
    compose --profile scale-out down --remove-orphans
    sessions=$(docker ps -q --filter "label=streamspace.agent=$(env_get AGENT_ID)" | wc -l)
    ((sessions == 0)) || log "$sessions session container(s) keep running; the next up adopts them"
  fi
  log "down"
}

main "$@"
