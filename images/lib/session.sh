# Session images: the base (debootstrap + `docker import`) and the app images built FROM it.
# Sourced by images/build.sh after lib/common.sh.

BASE_IMAGE=streamspace/session-base:$SUITE
BASE_PACKAGES=xvfb,x11vnc,matchbox-window-manager,xterm,fonts-dejavu-core

configure_session_rootfs() {
  local root=$1
  chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash user
  install -m 0755 "$HERE/base/entrypoint.sh" "$root/usr/local/bin/session-entrypoint"
  # Xvfb runs as `user` and needs the socket directory to exist, world-writable and sticky.
  install -d -m 1777 "$root/tmp/.X11-unix"
  write_apt_config "$root"
}

build_base() {
  skip_if_built "$BASE_IMAGE" && return 0
  make_rootfs base "$BASE_PACKAGES"
  log "base: configuring user, entrypoint, apt"
  configure_session_rootfs "$ROOTFS"
  clean_rootfs "$ROOTFS"
  log "base: importing ($(du -sm "$ROOTFS" | cut -f1) MB after cleanup)"
  import_rootfs "$ROOTFS" "$BASE_IMAGE" \
    --change 'ENTRYPOINT ["/usr/local/bin/session-entrypoint"]' \
    --change 'EXPOSE 5900' \
    --change 'WORKDIR /home/user' \
    --change 'ENV LANG=C.UTF-8 SESSION_APP=xterm SESSION_GEOMETRY=1280x800x24 VNC_PORT=5900' \
    --message "StreamSpace session base ($SUITE, $BASE_PACKAGES)"
  drop_work
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
  docker_build "$image" - <"$HERE/$name/Dockerfile"
  log "$name: built $image ($(image_size "$image"))"
}
