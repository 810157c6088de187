#!/usr/bin/env bash
# Install uv (the lockfile-driven installer) into .tools/, on a fresh Debian 12 as root too.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "python3 >= 3.11 is required" >&2; exit 1
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing python3-venv (needs root)" >&2
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
python3 -m venv .tools
.tools/bin/pip install --quiet --disable-pip-version-check 'uv>=0.4'
