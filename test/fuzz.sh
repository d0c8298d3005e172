#!/usr/bin/env bash
# make fuzz [FUZZTIME=5m]: run every go test -fuzz target in the module for
# FUZZTIME each, one at a time (-parallel 1: the machines have two cores),
# and print each target's exec count.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}
status=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  echo "== $pkg $name ($fuzztime)"
  if ! go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel 1 2>&1 | tee /tmp/veil-fuzz.log | tail -3; then
    status=1
  fi
  grep -o 'execs: [0-9]*' /tmp/veil-fuzz.log | tail -1 || true
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\./||; s|:func |:|' | sort)
exit $status
