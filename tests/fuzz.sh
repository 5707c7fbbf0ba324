#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, so CI exercises the decoders of untrusted input.
# Minimising a new input is bounded too: its default (60 s) can stall a loaded CI machine.
#
# Go 1.26's fuzz coordinator can end a run that found nothing with a bare "context deadline
# exceeded" when -fuzztime expires while a worker is busy (go.dev/issue/75804, fixed in Go
# 1.27). That run wrote no failing input: it is told apart from a finding by that, the
# target's seeds and corpus are replayed to be sure, and it is reported as a flake.
set -euo pipefail
t=${1:-20s}
cd "$(dirname "$0")/.."
found=0 flakes=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    found=$((found+1))
    echo "fuzz $pkg $f for $t"
    if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 5s "$pkg" 2>&1 | tee "$out"; then
      continue
    fi
    if grep -q 'Failing input written to' "$out" || ! grep -qx '[[:space:]]*context deadline exceeded' "$out"; then
      echo "fuzz: $f found a failing input (above)" >&2
      exit 1
    fi
    echo "fuzz: $f ended with the coordinator's deadline race and no failing input; replaying its corpus"
    go test -count=1 -run "^$f\$" "$pkg"
    flakes+=("$f")
  done
done
echo "fuzz targets run: $found; ended by the deadline race (no input, corpus replayed clean): ${#flakes[@]}${flakes:+ (${flakes[*]})}"
