#!/usr/bin/env bash
# CI hook (run by .ci/run): nginx for the `make bench` smoke test
# (internal/benchproxy TestCompareSmoke), which puts the agent beside nginx
# as a plain reverse proxy. nginx-light is enough; the test writes its own
# configuration and listens on loopback only. apt's start of the system
# service is not needed (and is refused in containers).
set -euo pipefail
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "bench tools: installing nginx-light from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi
# The package's own service would listen on port 80 of every address.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
echo "bench tools: $( (nginx -v || /usr/sbin/nginx -v) 2>&1)"
