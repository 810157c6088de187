# The stack-services image: PostgreSQL, PgBouncer, Redis and haproxy for deploy/compose, from
# Debian packages, FROM the platform base. Sourced by images/build.sh after lib/platform.sh
# (its PLATFORM_BASE, image_id); built under the platform family's lock.

STACK_IMAGE=streamspace/stack-services:$SUITE

build_stack_image() {
  local inputs
  image_exists "$PLATFORM_BASE" || die "$PLATFORM_BASE is missing (images/build.sh platform-base)"
  inputs=$(hash_inputs "$HERE/stack-services" "$HERE/lib/stack.sh" \
    "$(image_id "$PLATFORM_BASE")" "stack-services $SUITE")
  skip_if_current "$STACK_IMAGE" "$inputs" && return 0
  new_work
  cp "$HERE/stack-services/Dockerfile" "$HERE/stack-services/stack-service" "$WORK/"
  log "stack-services: docker build FROM $PLATFORM_BASE (apt-get install postgresql-15" \
    "pgbouncer redis-server haproxy; about 1 min)"
  docker_build "$STACK_IMAGE" --build-arg "BASE_IMAGE=$PLATFORM_BASE" \
    --label "io.streamspace.inputs=$inputs" "$WORK"
  drop_work
  log "stack-services: built $STACK_IMAGE ($(image_size "$STACK_IMAGE"))"
}
