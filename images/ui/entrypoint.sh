#!/bin/sh
# Write the control-plane upstream from STREAMSPACE_API_UPSTREAM (host:port, several separated
# by spaces or commas), then run nginx in the foreground. Everything written goes to /tmp/nginx.
set -eu
servers=$(printf '%s' "${STREAMSPACE_API_UPSTREAM:-streamspace-api:8080}" | tr ',' ' ')
[ -n "$(printf '%s' "$servers" | tr -d ' ')" ] || {
  echo "ui-entrypoint: STREAMSPACE_API_UPSTREAM is empty" >&2
  exit 2
}
mkdir -p /tmp/nginx
{
  echo 'upstream streamspace_api {'
  echo '    least_conn;'
  for server in $servers; do
    case "$server" in
      *[!A-Za-z0-9.:_\[\]-]*)
        echo "ui-entrypoint: STREAMSPACE_API_UPSTREAM: '$server' is not host:port" >&2
        exit 2 ;;
    esac
    echo "    server $server max_fails=2 fail_timeout=5s;"
  done
  echo '    keepalive 32;'
  echo '}'
} >/tmp/nginx/upstream.conf
echo "ui-entrypoint: control plane at $servers" >&2
exec nginx -e stderr -c /etc/streamspace/nginx.conf -g 'daemon off;' "$@"
