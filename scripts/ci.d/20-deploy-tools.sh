#!/usr/bin/env bash
# CI hook (run by .ci/run): tools the packaging and deployment tests call:
# shellcheck (deploy scripts, zip shim, .deb maintainer scripts), jq (the deploy
# scripts read extension.json and the settings with it), dpkg-deb (reads the .deb),
# systemd-analyze (the unit file's verify and security tests).
set -euo pipefail
missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v jq >/dev/null || missing+=(jq)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deploy tools: installing ${missing[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deploy tools: $(shellcheck --version | sed -n 2p), $(jq --version), $(systemd-analyze --version | head -1)"
