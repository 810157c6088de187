#!/usr/bin/env bash
# Install (apt, once) and start the real services the tests use, on loopback only:
# PostgreSQL 15 on 127.0.0.1:5442, Redis 7 on 127.0.0.1:6390, dockerd on its default socket.
# `start` prints `export` lines for the test environment; `stop` shuts them down.
set -euo pipefail
RUN_DIR=${STREAMSPACE_SERVICES_DIR:-/tmp/streamspace-services}
PG_PORT=${STREAMSPACE_TEST_PG_PORT:-5442}
REDIS_PORT=${STREAMSPACE_TEST_REDIS_PORT:-6390}
PGBIN=/usr/lib/postgresql/15/bin
PACKAGES=(postgresql redis-server redis-sentinel docker.io debootstrap chromium novnc websockify
          haproxy nginx iproute2 procps curl ca-certificates python3-venv)

log() { echo "[services] $*" >&2; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

start_redis() {
  mkdir -p "$RUN_DIR/redis"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
      --dir "$RUN_DIR/redis" --pidfile "$RUN_DIR/redis/redis.pid" --logfile "$RUN_DIR/redis/redis.log" >&2
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
  fi
  log "redis on 127.0.0.1:$REDIS_PORT"
}

start_postgres() {
  mkdir -p "$RUN_DIR/pg" && chown postgres "$RUN_DIR/pg"
  if [ ! -f "$RUN_DIR/pg/data/PG_VERSION" ]; then
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $RUN_DIR/pg/data -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8" >/dev/null
  fi
  if ! su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $RUN_DIR/pg/data status" >/dev/null 2>&1; then
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $RUN_DIR/pg/data -l $RUN_DIR/pg/pg.log -w -o '-p $PG_PORT -k $RUN_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400' start" >/dev/null
  fi
  log "postgresql on 127.0.0.1:$PG_PORT"
}

start_docker() {
  if docker info >/dev/null 2>&1; then log "dockerd already running"; return; fi
  mkdir -p "$RUN_DIR"
  log "starting dockerd"
  (dockerd >"$RUN_DIR/dockerd.log" 2>&1 &)
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see $RUN_DIR/dockerd.log"; tail -20 "$RUN_DIR/dockerd.log" >&2; exit 1; }
}

case "${1:-start}" in
  start)
    install_packages
    "$(dirname "$0")/k8s-tools.sh" >&2   # helm, kubectl, promtool for tests/deploy
    start_redis
    start_postgres
    start_docker
    echo "export STREAMSPACE_TEST_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "export STREAMSPACE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export STREAMSPACE_TEST_REQUIRE_SERVICES=1"
    ;;
  stop)
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $RUN_DIR/pg/data -m fast stop" >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
