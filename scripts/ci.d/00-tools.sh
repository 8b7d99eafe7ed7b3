#!/usr/bin/env bash
# CI hook (run by .ci/run): tools the tests call besides Go. python3 runs the
# independent signature check (scripts/verify-signature.py); Debian 12 images
# ship it, a minimal one may not.
set -euo pipefail
missing=()
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools: installing ${missing[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "tools: python3 $(python3 -c 'import sys; print(sys.version.split()[0])')"
