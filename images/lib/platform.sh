# Platform images: the control plane, the agent and the UI (nginx), on one shared Debian root.
# Sourced by images/build.sh after lib/common.sh. Python wheels come from PyPI on the host (the
# image's Python is Debian 12's 3.11, the same ABI as the wheels asked for) and are installed
# in the image with --no-index: the build itself needs neither a registry nor PyPI.

REPO=$(cd "$HERE/.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n1)
PLATFORM_BASE=streamspace/platform-base:$SUITE
PLATFORM_PACKAGES=ca-certificates,python3,python3-venv,nginx
# Bump when the base recipe (build_platform_base) changes, so existing bases are rebuilt.
PLATFORM_BASE_RECIPE=1
CACHE=${STREAMSPACE_IMAGES_CACHE:-/var/tmp/streamspace-images}
NOVNC_DIR=web/viewer/node_modules/@novnc/novnc

# Debian's security updates (debootstrap only sees the main suite): nginx faces the network.
upgrade_rootfs() {
  local root=$1
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  if ! { chroot "$root" apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -q upgrade; } \
      >"$WORK/upgrade.log" 2>&1; then
    tail -n 20 "$WORK/upgrade.log" >&2
    die "apt-get upgrade in the rootfs failed (log above)"
  fi
  chroot "$root" apt-get clean
  : >"$root/etc/resolv.conf"
}

build_platform_base() {
  local inputs
  inputs=$(hash_inputs "$SUITE" "$PLATFORM_PACKAGES" "recipe $PLATFORM_BASE_RECIPE")
  skip_if_current "$PLATFORM_BASE" "$inputs" && return 0
  make_rootfs platform-base "$PLATFORM_PACKAGES"
  write_apt_config "$ROOTFS"
  log "platform-base: security updates from $SECURITY_MIRROR"
  upgrade_rootfs "$ROOTFS"
  clean_rootfs "$ROOTFS"
  log "platform-base: importing ($(du -sm "$ROOTFS" | cut -f1) MB after cleanup)"
  import_rootfs "$ROOTFS" "$PLATFORM_BASE" \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL io.streamspace.inputs=$inputs" \
    --message "StreamSpace platform base ($SUITE, $PLATFORM_PACKAGES)"
  drop_work
  log "platform-base: built $PLATFORM_BASE ($(image_size "$PLATFORM_BASE"))"
}

image_id() { docker image inspect -f '{{.Id}}' "$1"; }

# uv from UV, PATH or the checkout's .tools (installed there by `make`'s rule when missing).
find_uv() {
  UV=${UV:-$(command -v uv || true)}
  if [ -z "$UV" ]; then
    UV=$REPO/.tools/bin/uv
    [ -x "$UV" ] || make -s -C "$REPO" .tools/bin/uv >&2 || die "installing uv into .tools failed"
  fi
  [ -x "$UV" ] || die "uv not found at $UV"
}

# Dependency wheels for CPython 3.11 on glibc 2.36 (Debian 12), keyed by uv.lock: downloaded
# once. pip 23 does not widen a manylinux_2_36 platform to the older ones, so list them all.
dependency_wheels() {
  local dir=$CACHE/wheels-$(sha256sum "$REPO/uv.lock" | cut -c1-16) platforms=() v
  if [ -f "$dir/.complete" ]; then
    WHEELS=$dir
    return 0
  fi
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is needed to download wheels"
  for v in $(seq 36 -1 5); do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
  for v in 2014 2010 1; do platforms+=(--platform "manylinux${v}_x86_64"); done
  find_uv
  mkdir -p "$dir"
  log "python: downloading the dependency wheels of uv.lock (about 10 s)"
  # Markers off: pip would judge them by this host's Python (3.11.7 skips async-timeout, which
  # Debian's 3.11.2 needs). The wheelhouse is a superset; pip in the image picks what it needs.
  (cd "$REPO" && "$UV" export --frozen --no-dev --no-hashes --no-emit-project --no-header \
    --quiet) | sed -e 's/ *;.*$//' >"$dir/requirements.txt" \
    || die "uv export failed"
  # --isolated: this host's pip configuration (extra indexes, constraints) is not the image's.
  python3 -m pip --isolated download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" -d "$dir" -r "$dir/requirements.txt" || die "pip download failed"
  touch "$dir/.complete"
  WHEELS=$dir
}

python_inputs() {
  hash_inputs "$REPO/src" "$REPO/pyproject.toml" "$REPO/uv.lock" "$REPO/README.md" \
    "$HERE/platform" "$HERE/lib/platform.sh" "$REPO/web/viewer/package-lock.json" \
    "$(image_id "$PLATFORM_BASE")" "$1"
}

# The build context of the Python images: the Dockerfile, the wheels (dependencies and the
# project's own) and noVNC; about 30 MB.
python_context() {
  local ctx=$1
  dependency_wheels
  find_uv
  if [ ! -f "$REPO/$NOVNC_DIR/core/rfb.js" ]; then
    log "python: installing noVNC (npm ci in web/viewer)"
    make -s -C "$REPO" "$NOVNC_DIR/core/rfb.js" >&2 || die "installing noVNC failed"
  fi
  mkdir -p "$ctx/wheels"
  cp "$HERE/platform/Dockerfile" "$ctx/"
  ln "$WHEELS"/*.whl "$ctx/wheels/" 2>/dev/null || cp "$WHEELS"/*.whl "$ctx/wheels/"
  (cd "$REPO" && "$UV" build --wheel --quiet --out-dir "$ctx/wheels" . >&2) \
    || die "building the streamspace wheel failed"
  cp -r "$REPO/$NOVNC_DIR" "$ctx/novnc"
  rm -rf "$ctx/novnc/docs" "$ctx/novnc/tests"
}

# control-plane or agent: one Dockerfile, one target each, sharing the venv stage.
build_python_image() {
  local target=$1 image="streamspace/$1:$VERSION" inputs ctx
  image_exists "$PLATFORM_BASE" || die "$PLATFORM_BASE is missing (images/build.sh platform-base)"
  inputs=$(python_inputs "$target $VERSION")
  skip_if_current "$image" "$inputs" && return 0
  new_work
  ctx=$WORK
  python_context "$ctx"
  log "$target: docker build --target $target ($(du -sm "$ctx" | cut -f1) MB context)"
  docker_build "$image" --target "$target" --build-arg "BASE_IMAGE=$PLATFORM_BASE" \
    --label "io.streamspace.inputs=$inputs" \
    --label "org.opencontainers.image.version=$VERSION" "$ctx"
  drop_work
  log "$target: built $image ($(image_size "$image"))"
}

build_ui_image() {
  local image="streamspace/ui:$VERSION" inputs ctx
  image_exists "$PLATFORM_BASE" || die "$PLATFORM_BASE is missing (images/build.sh platform-base)"
  # make rebuilds ui/dist only when a UI source is newer than it (npm ci the first time).
  if ! make -s -q -C "$REPO" ui 2>/dev/null; then
    log "ui: make ui (npm ci when the lockfile changed, vite build; about 30 s)"
    make -s -C "$REPO" ui >&2 || die "building the UI (make ui) failed"
  fi
  inputs=$(hash_inputs "$REPO/ui/dist" "$REPO/deploy/nginx/streamspace.conf" "$HERE/ui" \
    "$HERE/lib/platform.sh" \
    "$(image_id "$PLATFORM_BASE")" "ui $VERSION")
  skip_if_current "$image" "$inputs" && return 0
  new_work
  ctx=$WORK
  cp "$HERE/ui/Dockerfile" "$HERE/ui/nginx.conf" "$HERE/ui/entrypoint.sh" \
    "$REPO/deploy/nginx/streamspace.conf" "$ctx/"
  cp -r "$REPO/ui/dist" "$ctx/dist"
  log "ui: docker build ($(du -sm "$ctx" | cut -f1) MB context)"
  docker_build "$image" --build-arg "BASE_IMAGE=$PLATFORM_BASE" \
    --label "io.streamspace.inputs=$inputs" \
    --label "org.opencontainers.image.version=$VERSION" "$ctx"
  drop_work
  log "ui: built $image ($(image_size "$image"))"
}
