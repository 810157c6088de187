#!/usr/bin/env bash
# Build StreamSpace session images locally from Debian packages; no container registry needed.
#   base      streamspace/session-base:bookworm  debootstrap minbase rootfs + `docker import`
#   terminal  streamspace/terminal:bookworm      `docker build` FROM base (xterm desktop)
#   browser   streamspace/browser:bookworm       `docker build` FROM base + firefox-esr (apt)
# Usage: images/build.sh [base|terminal|browser|default|all]... [--force]
#   default (no target) = base + terminal; all = base + terminal + browser.
#   Images that already exist are skipped unless --force is given.
# Env: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: what this host's apt uses).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
BASE_IMAGE=streamspace/session-base:$SUITE
BASE_PACKAGES=xvfb,x11vnc,matchbox-window-manager,xterm,fonts-dejavu-core
FORCE=0
START=$(date +%s)

log() { printf '[images %3ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The first URI of the host's apt sources whose path ends in the given suffix.
host_mirror() {
  local suffix=$1
  cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '(https?|file)://[^ ]+' | grep -E "/${suffix}/?\$" | head -n1 | sed 's#/$##'
}

MIRROR=${DEBIAN_MIRROR:-$(host_mirror debian || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security || true)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

skip_if_built() {
  if [ "$FORCE" = 0 ] && image_exists "$1"; then
    log "$1 already built ($(image_size "$1")); skipping (use --force to rebuild)"
    return 0
  fi
  return 1
}

image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%d MB", $1/1000/1000}'; }

write_apt_config() {
  local root=$1
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # Images built on top keep small: no recommends, no docs or man pages.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$root/etc/apt/apt.conf.d/90streamspace-no-recommends"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
    'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/en*' \
    >"$root/etc/dpkg/dpkg.cfg.d/90streamspace-excludes"
}

configure_rootfs() {
  local root=$1
  chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash user
  install -m 0755 "$HERE/base/entrypoint.sh" "$root/usr/local/bin/session-entrypoint"
  # Xvfb runs as `user` and needs the socket directory to exist, world-writable and sticky.
  install -d -m 1777 "$root/tmp/.X11-unix"
  write_apt_config "$root"
}

clean_rootfs() {
  local root=$1
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/man/* "$root"/usr/share/info/*
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name 'en*' -not -name locale.alias \
    -exec rm -rf {} +
}

build_base() {
  skip_if_built "$BASE_IMAGE" && return 0
  [ "$(id -u)" = 0 ] || die "building the base image needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  local root
  WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/streamspace-rootfs.XXXXXX")
  root="$WORK/rootfs"
  trap 'rm -rf "${WORK:-}"' EXIT
  log "base: debootstrap $SUITE from $MIRROR with $BASE_PACKAGES (about 40 s)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$MIRROR" \
      >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  log "base: rootfs ready ($(du -sm "$root" | cut -f1) MB); configuring user, entrypoint, apt"
  configure_rootfs "$root"
  clean_rootfs "$root"
  log "base: importing ($(du -sm "$root" | cut -f1) MB after cleanup)"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/session-entrypoint"]' \
    --change 'EXPOSE 5900' \
    --change 'WORKDIR /home/user' \
    --change 'ENV LANG=C.UTF-8 SESSION_APP=xterm SESSION_GEOMETRY=1280x800x24 VNC_PORT=5900' \
    --message "StreamSpace session base ($SUITE, $BASE_PACKAGES)" \
    - "$BASE_IMAGE" >/dev/null
  log "base: built $BASE_IMAGE ($(image_size "$BASE_IMAGE"))"
}

# An app image is stale when its first layer is not the current base image's (only) layer.
built_on_current_base() {
  local base_layer app_layer
  base_layer=$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$BASE_IMAGE")
  app_layer=$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$1")
  [ "$base_layer" = "$app_layer" ]
}

build_app() {
  local name=$1 image="streamspace/$1:$SUITE"
  image_exists "$BASE_IMAGE" || die "$BASE_IMAGE is missing; build it first (images/build.sh base)"
  if image_exists "$image" && ! built_on_current_base "$image"; then
    log "$image was built on an older $BASE_IMAGE; rebuilding it"
  elif skip_if_built "$image"; then
    return 0
  fi
  log "$name: docker build FROM $BASE_IMAGE"
  # The Dockerfile goes in on stdin, so the build context is empty and nothing is uploaded.
  # The legacy builder (no buildx here) warns that it is deprecated: keep its output for errors.
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build -t "$image" - <"$HERE/$name/Dockerfile" 2>&1); then
    printf '%s\n' "$out" | tail -n 30 >&2
    die "docker build of $image failed (output above)"
  fi
  log "$name: built $image ($(image_size "$image"))"
}

main() {
  local targets=()
  for arg in "$@"; do
    case "$arg" in
      --force) FORCE=1 ;;
      -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      base|terminal|browser) targets+=("$arg") ;;
      default) targets+=(base terminal) ;;
      all) targets+=(base terminal browser) ;;
      *) die "unknown argument '$arg' (try --help)" ;;
    esac
  done
  ((${#targets[@]})) || targets=(base terminal)
  docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
  for target in "${targets[@]}"; do
    case "$target" in
      base) build_base ;;
      *) build_app "$target" ;;
    esac
  done
  log "done: ${targets[*]}"
}

main "$@"
