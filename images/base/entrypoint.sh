#!/bin/sh
# StreamSpace session entrypoint: Xvfb + window manager + the app + x11vnc on one display.
# Runs as root only long enough to prepare /home/user (a named volume that may be fresh and
# empty, or hold the user's files from earlier sessions), then drops to `user` (uid 1000).
# Env: SESSION_APP (default xterm), SESSION_GEOMETRY (default 1280x800x24),
#      SESSION_WM (default matchbox-window-manager: kiosk style, windows fill the screen),
#      VNC_PORT (default 5900), VNC_PASSWORD (optional; without it VNC has no password).
set -eu

USER_NAME=user
USER_HOME=/home/user

prepare_home() {
  mkdir -p "$USER_HOME"
  # A fresh volume may be owned by root; fix it once, recursively, and never touch the files
  # of a home that is already the user's (that would be slow on a big home).
  if [ "$(stat -c %u "$USER_HOME")" != 1000 ]; then
    chown -R 1000:1000 "$USER_HOME"
  fi
  # Copy the skeleton without overwriting anything the user already has.
  setpriv --reuid=1000 --regid=1000 --init-groups cp -rn /etc/skel/. "$USER_HOME"/ 2>/dev/null || true
}

if [ "$(id -u)" = 0 ]; then
  prepare_home
  export HOME="$USER_HOME" USER="$USER_NAME" LOGNAME="$USER_NAME"
  cd "$USER_HOME"
  exec setpriv --reuid=1000 --regid=1000 --init-groups "$0" "$@"
fi

export HOME="${HOME:-$USER_HOME}" DISPLAY=:1
GEOMETRY="${SESSION_GEOMETRY:-1280x800x24}"
APP="${SESSION_APP:-xterm}"
PORT="${VNC_PORT:-5900}"
# A woken (restarted) container still has the last run's /tmp: a stale X socket would pass
# for a ready display, and a stale lock file would stop Xvfb.
rm -rf /tmp/.X1-lock /tmp/.X11-unix/X1 /tmp/session.*
RUNTIME_DIR="$(mktemp -d /tmp/session.XXXXXX)"

Xvfb :1 -screen 0 "$GEOMETRY" -nolisten tcp >"$RUNTIME_DIR/xvfb.log" 2>&1 &
XVFB_PID=$!
i=0
while [ ! -S /tmp/.X11-unix/X1 ]; do
  i=$((i + 1))
  if [ "$i" -gt 200 ] || ! kill -0 "$XVFB_PID" 2>/dev/null; then
    cat "$RUNTIME_DIR/xvfb.log" >&2
    echo "Xvfb did not start (geometry '$GEOMETRY'); its log is above" >&2
    exit 1
  fi
  sleep 0.05
done

sh -c "${SESSION_WM:-matchbox-window-manager}" >"$RUNTIME_DIR/wm.log" 2>&1 &

# The app runs in a loop so a user who closes it gets it back instead of an empty desktop.
(
  while true; do
    env -u VNC_PASSWORD sh -c "$APP" || true
    sleep 1
  done
) &

AUTH="-nopw"
if [ -n "${VNC_PASSWORD:-}" ]; then
  x11vnc -storepasswd "$VNC_PASSWORD" "$RUNTIME_DIR/vncpass" >/dev/null 2>&1
  AUTH="-rfbauth $RUNTIME_DIR/vncpass"
fi
unset VNC_PASSWORD
echo "session ready: display :1 ($GEOMETRY), app '$APP', VNC on port $PORT"
# shellcheck disable=SC2086  # AUTH is one or two words on purpose
exec x11vnc -display :1 -rfbport "$PORT" -forever -shared -noxdamage -quiet $AUTH
