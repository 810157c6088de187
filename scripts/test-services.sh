#!/usr/bin/env bash
# Install (apt, once) and start the real services the tests use, on loopback only:
# PostgreSQL 15 on 127.0.0.1:5442, Redis 7 on 127.0.0.1:6390, dockerd on its default socket,
# and PgBouncer in transaction pooling mode on 127.0.0.1:6442 in front of that PostgreSQL.
# docker-compose (Debian's 1.29) is installed for deploy/compose and its test.
# `start` prints `export` lines for the test environment; `stop` shuts them down.
set -euo pipefail
RUN_DIR=${STREAMSPACE_SERVICES_DIR:-/tmp/streamspace-services}
PG_PORT=${STREAMSPACE_TEST_PG_PORT:-5442}
REDIS_PORT=${STREAMSPACE_TEST_REDIS_PORT:-6390}
PGBOUNCER_PORT=${STREAMSPACE_TEST_PGBOUNCER_PORT:-6442}
PGBIN=/usr/lib/postgresql/15/bin
PACKAGES=(postgresql redis-server redis-sentinel docker.io docker-compose debootstrap chromium
          novnc websockify haproxy nginx pgbouncer iproute2 procps curl ca-certificates python3-venv
          slapd openssl nodejs)

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

pgbouncer_answers() {
  psql -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1
}

# Every database of the test server through one wildcard entry (tests create their own), in
# transaction mode: a server connection is lent per transaction, so session state such as a
# driver's named prepared statements does not follow the client, as behind a production pooler.
start_pgbouncer() {
  local dir=$RUN_DIR/pgbouncer
  mkdir -p "$dir" && chown postgres "$dir"
  if ! pgbouncer_answers; then
    echo '"postgres" ""' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
admin_users = postgres
INI
    su postgres -s /bin/sh -c "/usr/sbin/pgbouncer -d -q $dir/pgbouncer.ini" >&2
    for _ in $(seq 100); do pgbouncer_answers && break; sleep 0.05; done
    pgbouncer_answers || { log "pgbouncer did not start; see $dir/pgbouncer.log"; tail -20 "$dir/pgbouncer.log" >&2; exit 1; }
  fi
  log "pgbouncer (transaction mode) on 127.0.0.1:$PGBOUNCER_PORT"
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
    start_pgbouncer
    start_docker
    echo "export STREAMSPACE_TEST_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "export STREAMSPACE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export STREAMSPACE_TEST_PGBOUNCER_URL=postgresql+asyncpg://postgres@127.0.0.1:$PGBOUNCER_PORT/postgres"
    echo "export STREAMSPACE_TEST_REQUIRE_SERVICES=1"
    ;;
  stop)
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    [ -f "$RUN_DIR/pgbouncer/pgbouncer.pid" ] && kill "$(cat "$RUN_DIR/pgbouncer/pgbouncer.pid")" 2>/dev/null || true
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $RUN_DIR/pg/data -m fast stop" >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
