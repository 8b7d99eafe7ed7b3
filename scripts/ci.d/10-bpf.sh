#!/usr/bin/env bash
# CI hook (run by .ci/run): regenerates the eBPF objects with the pinned clang
# and fails if they differ from the committed ones, so the embedded object
# always matches bpf/proxy.bpf.c.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/bpf-generate.sh
if ! git diff --exit-code --stat -- bpf/; then
  echo "bpf: regenerated files differ from the committed ones; run 'make bpf' and commit bpf/" >&2
  exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=all -- bpf/)" ]; then
  git status --porcelain --untracked-files=all -- bpf/ >&2
  echo "bpf: 'make bpf' left untracked files in bpf/; commit or remove them" >&2
  exit 1
fi
echo "bpf: generated files match the committed ones"
