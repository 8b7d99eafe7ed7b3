#!/usr/bin/env bash
# Regenerates the committed bpf2go output (bpf/proxy_bpfel.{go,o}) from
# bpf/proxy.bpf.c with the pinned compiler, installing it from Debian apt when
# it is missing. Called by `make bpf` and by scripts/ci.d/10-bpf.sh.
#
# Pinned: clang-14 / llvm-strip-14 from Debian 12, version 14.0.6. Another
# clang emits a different object; bump this pin together with bpf/gen.go.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG=clang-14
STRIP=llvm-strip-14
VERSION=14.0.6
PACKAGES=(clang-14 llvm-14)

if ! command -v "$CLANG" >/dev/null || ! command -v "$STRIP" >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bpf: $CLANG and $STRIP missing; run as root to install them, or: apt-get install ${PACKAGES[*]}" >&2
    exit 1
  fi
  echo "bpf: installing ${PACKAGES[*]} from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

have=$("$CLANG" --version | sed -n 's/.*clang version \([0-9.]*\).*/\1/p' | head -n1)
if [ "$have" != "$VERSION" ]; then
  echo "bpf: $CLANG is version '$have', want $VERSION: the committed object was built with $VERSION" >&2
  exit 1
fi

go generate ./bpf/
