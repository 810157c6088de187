# Shared by up.sh, down.sh, verify.sh and compose.sh: where the stack's files are, its .env
# (read and written), docker-compose with this stack's file and env, and container lookups.
# Sourced, not run. STREAMSPACE_COMPOSE_ENV names another env file (one per stack: the tests
# run their own stacks beside yours, each with its own project name and ports).

COMPOSE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$COMPOSE_DIR/../.." && pwd)
ENV_FILE=${STREAMSPACE_COMPOSE_ENV:-$COMPOSE_DIR/.env}
STARTED=$SECONDS

log() { printf '[compose %3ss] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The value of KEY in the env file ("" when absent).
env_get() {
  [ -f "$ENV_FILE" ] || return 0
  sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1
}

# Set KEY=VALUE in the env file, replacing an existing line (the file stays 0600).
env_set() {
  local key=$1 value=$2 tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  chmod 600 "$tmp"
  { [ ! -f "$ENV_FILE" ] || grep -v "^$key=" "$ENV_FILE" || true; printf '%s=%s\n' "$key" "$value"; } \
    >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

# Set KEY only when the env file has no value for it yet (what the user wrote is kept).
env_default() { [ -n "$(env_get "$1")" ] || env_set "$1" "$2"; }

require_tools() {
  command -v docker >/dev/null || die "docker is not installed"
  docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running?)"
  command -v docker-compose >/dev/null \
    || die "docker-compose is not installed: apt-get install docker-compose"
}

require_env() {
  [ -f "$ENV_FILE" ] || die "$ENV_FILE does not exist: start the stack with deploy/compose/up.sh"
  PROJECT=$(env_get COMPOSE_PROJECT_NAME)
  [[ "$PROJECT" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
    || die "COMPOSE_PROJECT_NAME in $ENV_FILE must be lower-case letters, digits, - or _"
}

compose() {
  docker-compose --project-name "$PROJECT" --file "$COMPOSE_DIR/docker-compose.yaml" \
    --env-file "$ENV_FILE" "$@"
}

# The container of one service of this stack ("" when it has none).
container_of() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" | head -n1
}

# healthy | starting | unhealthy | running (no health check) | exited | missing ...
state_of() {
  local id
  id=$(container_of "$1")
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f \
    '{{if eq .State.Status "running"}}{{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}{{.State.Status}}{{end}}' \
    "$id" 2>/dev/null || echo missing
}

# Wait until every named service's container is healthy; progress every 5 s; on a container
# that stopped, or at the deadline, show the last lines of the laggards' logs and fail.
wait_healthy() {
  local deadline=$((SECONDS + ${STREAMSPACE_COMPOSE_TIMEOUT:-300})) said=$SECONDS service state
  local pending=() stopped=()
  while :; do
    pending=() stopped=()
    for service in "$@"; do
      state=$(state_of "$service")
      case "$state" in
        healthy) ;;
        exited|dead) stopped+=("$service") ;;
        *) pending+=("$service:$state") ;;
      esac
    done
    if ((${#stopped[@]})); then
      show_logs "${stopped[@]}"
      die "stopped: ${stopped[*]} (logs above)"
    fi
    ((${#pending[@]})) || return 0
    if ((SECONDS >= deadline)); then
      show_logs "${pending[@]%%:*}"
      die "not healthy after ${STREAMSPACE_COMPOSE_TIMEOUT:-300} s: ${pending[*]} (logs above)"
    fi
    if ((SECONDS - said >= 5)); then
      log "waiting for ${pending[*]}"
      said=$SECONDS
    fi
    sleep 1
  done
}

show_logs() {
  local service id
  for service in "$@"; do
    id=$(container_of "$service")
    [ -n "$id" ] || continue
    printf -- '----- %s (last 30 lines) -----\n' "$service" >&2
    docker logs --tail 30 "$id" 2>&1 | sed 's/^/  /' >&2
  done
}
