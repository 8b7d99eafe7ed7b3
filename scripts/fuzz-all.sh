#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each (default
# 30s), then prints one line per target: package, target, elapsed time,
# executions and new interesting inputs (docs/reliability.md "Fuzzing").
# FUZZPARALLEL sets go test -parallel (default: GOMAXPROCS). A crash fails
# the run after every target has run; the failing input is written under
# the package's testdata/fuzz/<target>/ by go test.
set -uo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
failed=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($fuzztime)"
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ${FUZZPARALLEL:+-parallel "$FUZZPARALLEL"} "$pkg" 2>&1 | tee "$log"; then
      result=ok
    else
      result=FAIL
      failed=1
    fi
    # The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (..), new interesting: 4 (total: 9)".
    last=$(grep '^fuzz: elapsed:' "$log" | tail -1 |
      sed -E 's/^fuzz: elapsed: ([^,]*), execs: ([0-9]+).*new interesting: ([0-9]+).*/\1 \2 \3/')
    summary+=("$result ${pkg#github.com/mspguest/msp/} $target ${last:-? ? ?}")
  done
done
echo "== fuzz summary: result package target elapsed execs new-interesting"
printf '%s\n' "${summary[@]}"
exit "$failed"
