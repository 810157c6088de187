# Shared by images/build.sh: logging, the Debian mirror, rootfs making and cleaning, image checks.
# Sourced, not run; expects HERE (images/), SUITE, FORCE and START to be set.

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

image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%d MB", $1/1000/1000}'; }

skip_if_built() {
  if [ "$FORCE" = 0 ] && image_exists "$1"; then
    log "$1 already built ($(image_size "$1")); skipping (use --force to rebuild)"
    return 0
  fi
  return 1
}

# The value of one label of an image ("" when the image or the label is missing).
image_label() {
  docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# Skip an image whose io.streamspace.inputs label equals the hash of what it is built from.
skip_if_current() {
  local image=$1 inputs=$2 built
  built=$(image_label "$image" io.streamspace.inputs)
  if [ "$FORCE" = 0 ] && [ "$built" = "$inputs" ]; then
    log "$image is up to date ($(image_size "$image")); skipping (use --force to rebuild)"
    return 0
  fi
  [ -z "$built" ] || [ "$FORCE" = 1 ] || log "$image is out of date; rebuilding it"
  return 1
}

# A short hash of files and directories (contents and names relative to the checkout, so two
# checkouts of the same commit agree and do not rebuild each other's images), plus extra strings.
hash_inputs() {
  local paths=() extra=() root
  root=$(cd "$HERE/.." && pwd)
  for arg in "$@"; do
    if [ -e "$arg" ]; then paths+=("$arg"); else extra+=("$arg"); fi
  done
  {
    printf '%s\n' "${extra[@]}"
    ((${#paths[@]} == 0)) || find "${paths[@]}" -type f -not -name '*.pyc' \
      -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum \
      | sed "s#  $root/#  #"
  } | sha256sum | cut -c1-16
}

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

clean_rootfs() {
  local root=$1
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/man/* "$root"/usr/share/info/*
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name 'en*' -not -name locale.alias \
    -exec rm -rf {} +
}

# A fresh scratch directory in WORK (one at a time), removed by drop_work or when the script exits.
new_work() {
  WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/streamspace-images.XXXXXX")
  trap 'rm -rf "${WORK:-}"' EXIT
}

drop_work() { rm -rf "${WORK:-}"; WORK=; }

# debootstrap a minbase rootfs with the given packages into ROOTFS=$WORK/rootfs.
make_rootfs() {
  local label=$1 packages=$2
  [ "$(id -u)" = 0 ] || die "building $label needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  new_work
  log "$label: debootstrap $SUITE from $MIRROR with $packages (about 40 s)"
  if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$WORK/rootfs" "$MIRROR" \
      >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  ROOTFS="$WORK/rootfs"
  log "$label: rootfs ready ($(du -sm "$ROOTFS" | cut -f1) MB)"
}


# `docker import` a rootfs as an image; further arguments are `--change`/`--message` options.
import_rootfs() {
  local root=$1 image=$2
  shift 2
  tar --numeric-owner -C "$root" -c . | docker import "$@" - "$image" >/dev/null
}

# `docker build` with the legacy builder (no buildx here), which warns that it is deprecated:
# keep its output and show it only on failure. The image it replaces is removed (when no
# container uses it), so rebuilds do not pile up untagged images.
docker_build() {
  local image=$1 out old
  shift
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  if ! out=$(DOCKER_BUILDKIT=0 docker build --force-rm -t "$image" "$@" 2>&1); then
    printf '%s\n' "$out" | tail -n 30 >&2
    die "docker build of $image failed (output above)"
  fi
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}
