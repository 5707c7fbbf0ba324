#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, so CI exercises the decoders of untrusted input.
# Minimising a new input is bounded too: its default (60 s) can stall a loaded CI machine.
set -euo pipefail
t=${1:-20s}
cd "$(dirname "$0")/.."
found=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    found=$((found+1))
    echo "fuzz $pkg $f for $t"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 5s "$pkg"
  done
done
echo "fuzz targets run: $found"
