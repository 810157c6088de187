#!/usr/bin/env bash
# Build StreamSpace's images locally from Debian packages; no container registry needed.
# Session images (what users stream):
#   base           streamspace/session-base:bookworm   debootstrap minbase rootfs + `docker import`
#   terminal       streamspace/terminal:bookworm       `docker build` FROM base (xterm desktop)
#   browser        streamspace/browser:bookworm        `docker build` FROM base + firefox-esr (apt)
# Platform images (what runs StreamSpace), tagged with the version in pyproject.toml:
#   platform-base  streamspace/platform-base:bookworm  debootstrap: python3, python3-venv, nginx
#   control-plane  streamspace/control-plane:VERSION   `streamspace api` on :8080, uid 10001
#   agent          streamspace/agent:VERSION           `streamspace agent`, uid 10001
#   ui             streamspace/ui:VERSION              nginx + ui/dist on :8080, uid 101
#   stack-services streamspace/stack-services:bookworm postgresql, pgbouncer, redis, haproxy (apt)
#                                                      for deploy/compose, FROM platform-base
# Usage: images/build.sh [TARGET|default|all|platform]... [--force]
#   default (no target) = base + terminal; all = base + terminal + browser;
#   platform = platform-base + control-plane + agent + ui (each builds platform-base if needed);
#   stack = platform + stack-services + base + terminal (what deploy/compose/up.sh runs).
#   Images that are built and up to date are skipped unless --force is given.
# Env: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: what this host's apt uses);
#   STREAMSPACE_IMAGES_CACHE (wheel cache, default /var/tmp/streamspace-images); UV (uv binary);
#   STREAMSPACE_IMAGES_LOCKS (where the per-family build locks live, default /var/tmp).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
FORCE=0
START=$(date +%s)

# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/session.sh
. "$HERE/lib/session.sh"
# shellcheck source=lib/platform.sh
. "$HERE/lib/platform.sh"
# shellcheck source=lib/stack.sh
. "$HERE/lib/stack.sh"

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

# Each step at most once per run (several targets need platform-base; --force rebuilds it once).
declare -A DONE=()
once() {
  [ -z "${DONE[$*]:-}" ] || return 0
  DONE[$*]=1
  "$@"
}

build() {
  case "$1" in
    base) once build_base ;;
    terminal|browser) once build_app "$1" ;;
    platform-base) once build_platform_base ;;
    control-plane|agent) once build_platform_base; once build_python_image "$1" ;;
    ui) once build_platform_base; once build_ui_image ;;
    stack-services) once build_platform_base; once build_stack_image ;;
  esac
}

main() {
  local targets=() arg target
  for arg in "$@"; do
    case "$arg" in
      --force) FORCE=1 ;;
      -h|--help) usage; exit 0 ;;
      base|terminal|browser|platform-base|control-plane|agent|ui|stack-services) targets+=("$arg") ;;
      default) targets+=(base terminal) ;;
      all) targets+=(base terminal browser) ;;
      platform) targets+=(platform-base control-plane agent ui) ;;
      stack) targets+=(base terminal platform-base control-plane agent ui stack-services) ;;
      *) die "unknown argument '$arg' (try --help)" ;;
    esac
  done
  ((${#targets[@]})) || targets=(base terminal)
  docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
  local session=0 platform=0
  for target in "${targets[@]}"; do
    case "$target" in base|terminal|browser) session=1 ;; *) platform=1 ;; esac
  done
  # One build of each family at a time on a host: a second one (make run's, a test's) waits,
  # then finds the images it wanted already built and up to date. The session and platform
  # families share nothing, so neither waits for the other (locks taken in this order).
  ((session)) && take_lock 8 session
  ((platform)) && take_lock 9 platform
  for target in "${targets[@]}"; do
    build "$target"
  done
  if ((platform)); then
    # The Python images' venv stage is left untagged by the legacy builder; not needed once
    # built (pruned only under the platform lock: another build may be making one).
    docker image prune --force --filter label=io.streamspace.stage=venv >/dev/null
  fi
  log "done: ${targets[*]}"
}

# take_lock FD FAMILY: hold the host-wide lock of one image family until this script exits.
take_lock() {
  local file="${STREAMSPACE_IMAGES_LOCKS:-/var/tmp}/streamspace-images-$2.lock"
  eval "exec $1>\"\$file\""
  if ! flock --nonblock "$1"; then
    log "another images/build.sh is building $2 images on this host; waiting for it"
    flock "$1"
  fi
}

main "$@"
