#!/usr/bin/env bash
# Start the whole production stack on this Docker host (see README.md in this directory):
#   1. builds the images that are missing or out of date (images/build.sh stack),
#   2. writes the secrets once into .env (0600; kept between runs, so data volumes stay usable),
#   3. starts PostgreSQL, PgBouncer, Redis, three control-plane replicas, haproxy and the UI
#      and waits until each is healthy,
#   4. provisions the agent's key once (`streamspace agents create`, stored in .env),
#   5. starts the two agent replicas and waits until the agent is online.
# Usage: deploy/compose/up.sh [--no-build]
# Env: STREAMSPACE_COMPOSE_ENV (env file, default deploy/compose/.env),
#   STREAMSPACE_COMPOSE_TIMEOUT (seconds to wait for health, default 300).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

INFRA=(postgres pgbouncer redis api-1 api-2 api-3 haproxy ui)
AGENTS=(agent-1 agent-2)

secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n1; }

# First run: every setting with its default and fresh secrets. Later runs fill in only what is
# missing (a value written by hand is kept) and refresh what follows from this host/checkout.
write_env() {
  if [ ! -f "$ENV_FILE" ]; then
    log "writing $ENV_FILE (secrets generated once, kept between runs)"
    install -m 600 /dev/null "$ENV_FILE"
    printf '# Written by deploy/compose/up.sh; holds secrets (mode 0600). Edit ports here.\n' \
      >"$ENV_FILE"
  fi
  env_default COMPOSE_PROJECT_NAME streamspace
  env_default BIND_ADDRESS 0.0.0.0
  env_default UI_PORT 8080
  env_default LB_PORT 8000
  env_default API_1_PORT 8001
  env_default API_2_PORT 8002
  env_default API_3_PORT 8003
  env_default REDIS_HOST_PORT 6379
  env_default AGENT_ID "docker-$(hostname -s | tr -c 'a-zA-Z0-9_.\n-' '-')"
  env_default REGION default
  env_default SESSIONS_NETWORK streamspace-sessions
  # The replicas believe X-Forwarded-For from haproxy and the UI's nginx only: addresses of
  # this stack's network, which Docker takes from 172.16.0.0/12 unless told otherwise.
  env_default TRUSTED_PROXIES 172.16.0.0/12
  env_default POSTGRES_PASSWORD "$(secret)"
  env_default REDIS_PASSWORD "$(secret)"
  env_default STREAMSPACE_JWT_SECRET "$(secret)$(secret)"
  env_default STREAMSPACE_ADMIN_PASSWORD "$(secret)"
  grep -q '^AGENT_API_KEY=' "$ENV_FILE" || env_set AGENT_API_KEY ""
  env_set STREAMSPACE_VERSION "$(version)"
  env_set DOCKER_GID "$(stat -c %g /var/run/docker.sock)"
}

build_images() {
  log "images: images/build.sh stack (skips the images that are up to date)"
  "$REPO/images/build.sh" stack || die "building the images failed (output above)"
}

# A small Python program run inside api-1 (its image has python3; the admin password is in its
# environment), talking to that replica on 127.0.0.1.
api_python() { compose exec -T api-1 python3 - "$@"; }

ADMIN_CALL='
import json, os, sys, urllib.request
BASE = "http://127.0.0.1:8080"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(BASE + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or "null")
token = call("POST", "/api/v1/auth/login", {
    "username": os.environ.get("STREAMSPACE_ADMIN_USERNAME", "admin"),
    "password": os.environ["STREAMSPACE_ADMIN_PASSWORD"]})["access_token"]
'

# The agent's key, once: all agent replicas present the same AGENT_API_KEY (a bootstrap key
# would be handed to the first replica only). A database that already knows the agent keeps the
# key .env holds; without one there, the key is rotated through the admin API.
provision_agent_key() {
  local agent out key
  agent=$(env_get AGENT_ID)
  if out=$(compose exec -T api-1 streamspace agents create "$agent" --platform docker \
      --region "$(env_get REGION)" 2>&1); then
    key=$(printf '%s\n' "$out" | tail -n1 | tr -d '\r')
    env_set AGENT_API_KEY "$key"
    log "agent $agent created and approved; its key is in $ENV_FILE"
  elif [[ "$out" == *"already exists"* && -n "$(env_get AGENT_API_KEY)" ]]; then
    log "agent $agent already provisioned; using its key from $ENV_FILE"
  elif [[ "$out" == *"already exists"* ]]; then
    log "agent $agent exists but $ENV_FILE has no key for it; rotating its key"
    key=$(api_python "$agent" <<<"$ADMIN_CALL
print(call('POST', '/api/v1/admin/agents/%s/rotate-key' % sys.argv[1], token=token)['apiKey'])") \
      || die "rotating the key of agent $agent failed"
    env_set AGENT_API_KEY "$(printf '%s' "$key" | tr -d '\r')"
  else
    die "streamspace agents create $agent failed: $out"
  fi
}

wait_agent_online() {
  local agent deadline=$((SECONDS + ${STREAMSPACE_COMPOSE_TIMEOUT:-300})) where
  agent=$(env_get AGENT_ID)
  while ((SECONDS < deadline)); do
    where=$(api_python "$agent" <<<"$ADMIN_CALL
for a in call('GET', '/api/v1/agents', token=token):
    if a['id'] == sys.argv[1] and a['status'] == 'online':
        print(a['pod_name'])" 2>/dev/null | tr -d '\r' || true)
    if [ -n "$where" ]; then
      log "agent $agent online (connected to $where)"
      return 0
    fi
    sleep 1
  done
  show_logs "${AGENTS[@]}"
  die "agent $agent did not come online (agent logs above)"
}

main() {
  local build=1 arg
  for arg in "$@"; do
    case "$arg" in
      --no-build) build=0 ;;
      -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument '$arg' (try --help)" ;;
    esac
  done
  require_tools
  write_env
  require_env
  ((build == 0)) || build_images
  log "starting ${INFRA[*]} (project $PROJECT)"
  compose up -d "${INFRA[@]}"
  wait_healthy "${INFRA[@]}"
  provision_agent_key
  log "starting ${AGENTS[*]} (HA, leader elected through Redis)"
  compose up -d "${AGENTS[@]}"
  wait_healthy "${AGENTS[@]}"
  wait_agent_online
  log "up: UI http://localhost:$(env_get UI_PORT)/  API/agents http://localhost:$(env_get LB_PORT)/" \
    "(haproxy)  admin password: STREAMSPACE_ADMIN_PASSWORD in $ENV_FILE"
  log "check it: deploy/compose/verify.sh   stop it: deploy/compose/down.sh [--volumes]"
}

main "$@"
