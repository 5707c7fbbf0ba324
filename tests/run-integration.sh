#!/usr/bin/env bash
# Runs the integration tier against the running all-in-one (tests/aio/up.sh):
#   0. tests/aio/smoke.sh (skip with NCA_SKIP_AIO_SMOKE=1);
#   1. `go test -tags integration -count=1` on every package that has
#      *_integration_test.go files, one result per package;
#   2. every executable tests/e2e/*.sh script, in name order, one result per
#      script (a non-executable one is a sourced helper such as lib.sh).
# Prints "N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}

if [[ ! -r $NCA_AIO_DIR/env ]]; then
	echo "run-integration: $NCA_AIO_DIR/env missing: start the all-in-one first (make aio-up)" >&2
	exit 1
fi
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/env"

# Tools only the tests use (the all-in-one has the rest): the snapshot test boots the
# snapshot as a VM under TCG.
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "run-integration: installing qemu-system-x86 (boots a snapshot as a VM)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=900 qemu-system-x86 >/dev/null ||
		echo "run-integration: qemu-system-x86 could not be installed: the snapshot test will say so" >&2
fi

passed=0 failed=0 failures=()
result() { # NAME RC
	if [[ $2 == 0 ]]; then
		passed=$((passed + 1))
		echo "PASS $1"
	else
		failed=$((failed + 1))
		failures+=("$1")
		echo "FAIL $1 (exit $2)"
	fi
}

# The control plane itself, with the reference compute (fake-compute.sh): the
# comparisons in the suites below are only meaningful if this passes.
if [[ ${NCA_SKIP_AIO_SMOKE:-0} != 1 ]]; then
	echo "=== tests/aio/smoke.sh"
	tests/aio/smoke.sh
	result "aio:smoke" $?
fi

# Packages with integration tests: directories holding a *_integration_test.go.
mapfile -t pkgs < <(git ls-files --cached --others --exclude-standard -- '*_integration_test.go' |
	xargs -r -n1 dirname | sort -u | sed 's|^|./|')
if ((${#pkgs[@]} == 0)); then
	echo "run-integration: no Go integration tests found"
fi
for p in "${pkgs[@]}"; do
	echo "=== go test -tags integration $p"
	go test -tags integration -count=1 "$p"
	result "go:$p" $?
done

shopt -s nullglob
scripts=(tests/e2e/*.sh)
if ((${#scripts[@]} == 0)); then
	echo "run-integration: no tests/e2e/*.sh scripts"
fi
for s in "${scripts[@]}"; do
	if [[ ! -x $s ]]; then
		# Not executable: a sourced helper (tests/e2e/lib.sh), not a suite.
		echo "=== e2e $s: not executable, a sourced helper: not run"
		continue
	fi
	echo "=== e2e $s"
	bash "$s"
	result "e2e:$s" $?
done

echo "run-integration: $passed passed, $failed failed"
for f in "${failures[@]}"; do echo "  failed: $f"; done
((failed == 0))
