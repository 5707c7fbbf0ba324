# shellcheck shell=bash
# Helpers for the end-to-end suites (tests/e2e/NN-*.sh). Sourced, never executed.
#
# Each suite runs the real agent binary as its OWN compute host (e2e_host NAME), with
# an overlay config file that gives it a private state_path, container name prefix
# and OVS bridges, so it never disturbs an agent already running as the all-in-one's
# host (nca-1) nor another suite. Checks print one "PASS name" / "FAIL name: why"
# line each; e2e_finish prints the tally and returns non-zero when anything failed.
#
# Needs root, the all-in-one (tests/aio/up.sh: writes $NCA_AIO_DIR/env) and Go.
# Named .bash, not .sh, so tests/run-integration.sh (which runs tests/e2e/*.sh) does not
# take it for a suite.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}
export PATH=$PATH:/usr/local/go/bin

if [[ ! -r $NCA_AIO_DIR/env || ! -r $NCA_AIO_DIR/admin-openrc ]]; then
	echo "e2e: $NCA_AIO_DIR/env or admin-openrc missing: start the all-in-one first (tests/aio/up.sh)" >&2
	exit 1
fi
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/env"
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/admin-openrc"

# One keystone password login for the whole suite: every later `openstack` call
# authenticates with the token, which spares keystone a password hash per call
# (seconds each on a loaded 2-core machine). Falls back to the password on failure.
if _tok=$(openstack token issue -f value -c id 2>/dev/null) && [[ -n $_tok ]]; then
	export OS_AUTH_TYPE=token OS_TOKEN=$_tok
	unset OS_USERNAME OS_PASSWORD OS_USER_DOMAIN_NAME
fi
unset _tok

E2E_PASSED=0
E2E_FAILED=0
E2E_FAILURES=()
E2E_T0=$SECONDS

# e2e_log prints a progress line with the seconds since the suite began.
e2e_log() { printf '[e2e %4ds] %s\n' "$((SECONDS - E2E_T0))" "$*"; }

# pass NAME [DETAIL] / fail NAME WHY record one check's outcome.
pass() {
	E2E_PASSED=$((E2E_PASSED + 1))
	echo "PASS $1${2:+ ($2)}"
}
fail() {
	E2E_FAILED=$((E2E_FAILED + 1))
	E2E_FAILURES+=("$1")
	echo "FAIL $1: $2"
}

# check NAME CMD... runs CMD; PASS when it succeeds, FAIL with its output otherwise.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name" "$(printf '%s' "$out" | tail -n 15)"
	fi
}

# expect_eq NAME GOT WANT
expect_eq() {
	if [[ $2 == "$3" ]]; then pass "$1" "$2"; else fail "$1" "got '$2', want '$3'"; fi
}

# e2e_finish prints the tally; its status is the suite's exit status.
e2e_finish() {
	echo "e2e $(basename "$0"): $E2E_PASSED passed, $E2E_FAILED failed in $((SECONDS - E2E_T0)) s"
	local f
	for f in "${E2E_FAILURES[@]}"; do echo "  failed: $f"; done
	((E2E_FAILED == 0))
}

# wait_until SECONDS CMD... polls CMD every 2 s until it succeeds; returns 1 on timeout.
# WAITED holds the seconds it took.
wait_until() {
	local secs=$1 start=$SECONDS
	shift
	while ! "$@" >/dev/null 2>&1; do
		if ((SECONDS - start >= secs)); then
			WAITED=$((SECONDS - start))
			return 1
		fi
		sleep 2
	done
	WAITED=$((SECONDS - start))
}

# osc runs the openstack client, retrying a few times when the API is briefly away
# (a teammate may be restarting all-in-one services).
osc() {
	local i out
	for i in 1 2 3 4 5 6; do
		if out=$(openstack "$@" 2>&1); then
			printf '%s\n' "$out"
			return 0
		fi
		case $out in
		*"Unable to establish connection"* | *"Service Unavailable"* | *"HTTP 503"* | *"HTTP 502"* | *"Connection refused"* | *"timed out"*)
			sleep 5
			;;
		*)
			printf '%s\n' "$out" >&2
			return 1
			;;
		esac
	done
	printf '%s\n' "$out" >&2
	return 1
}

# nova_manage runs nova-manage with the all-in-one's nova.conf (it holds the DB URLs).
nova_manage() { nova-manage --config-file "$NCA_AIO_DIR/etc/nova/nova.conf" "$@"; }

# e2e_build_agent builds the agent into the suite's work dir (unless NCA_AGENT_BIN
# names a binary) and sets E2E_BIN. A private output path keeps teammates' concurrent
# `make build` from swapping the binary under a running suite.
e2e_build_agent() {
	if [[ -n ${NCA_AGENT_BIN:-} ]]; then
		E2E_BIN=$NCA_AGENT_BIN
		return 0
	fi
	E2E_BIN=$E2E_WORK/nova-container-agent
	(cd "$E2E_ROOT" && go build -ldflags "-X main.version=e2e-$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
		-o "$E2E_BIN" ./cmd/nova-container-agent) || {
		echo "e2e: go build ./cmd/nova-container-agent failed" >&2
		exit 1
	}
}

# e2e_host NAME sets the suite's compute host and its private paths:
# E2E_HOST, E2E_WORK (state_path, overlay, logs), E2E_BR_INT, E2E_BR_PHYS.
e2e_host() {
	E2E_HOST=$1
	E2E_WORK=/var/lib/nca-e2e/$1
	local h
	h=$(printf '%s' "$1" | md5sum | cut -c1-6)
	# Bridge names must fit IFNAMSIZ (15): br-ei-xxxxxx / br-ep-xxxxxx.
	E2E_BR_INT=br-ei-$h
	E2E_BR_PHYS=br-ep-$h
	E2E_OVERLAY=$E2E_WORK/overlay.conf
	E2E_AGENT_LOG=$E2E_WORK/agent.log
	mkdir -p "$E2E_WORK/state"
}

# e2e_write_overlay [EXTRA_DEFAULT_LINES] writes the overlay config: our host name,
# state path, bridges and container prefix, plus extra [DEFAULT] lines.
e2e_write_overlay() {
	cat >"$E2E_OVERLAY" <<EOF
# Overlay for the e2e suite $(basename "$0"): its own compute host, state and bridges.
[DEFAULT]
host = $E2E_HOST
state_path = $E2E_WORK/state
instances_path = $E2E_WORK/state/instances
${1:-}
[oslo_concurrency]
lock_path = $E2E_WORK/state/lock
[ovs]
integration_bridge = $E2E_BR_INT
bridge_mappings = physnet1:$E2E_BR_PHYS
[container]
name_prefix = nca-e2e-$E2E_HOST-
image_store_path = $E2E_WORK/state/images
EOF
}

E2E_AGENT_PID=

# e2e_agent_start launches the agent in the background with the all-in-one's two
# config files and our overlay; its output goes to $E2E_AGENT_LOG.
e2e_agent_start() {
	printf '\n===== %s starting\n' "$(date -Is)" >>"$E2E_AGENT_LOG"
	setsid "$E2E_BIN" --config-file "$NCA_AGENT_CONF" --config-file "$NCA_OVS_AGENT_CONF" \
		--config-file "$E2E_OVERLAY" >>"$E2E_AGENT_LOG" 2>&1 </dev/null &
	E2E_AGENT_PID=$!
	e2e_log "agent started: pid $E2E_AGENT_PID, host $E2E_HOST, log $E2E_AGENT_LOG"
}

# e2e_agent_alive succeeds while the agent we started runs.
e2e_agent_alive() { [[ -n $E2E_AGENT_PID ]] && kill -0 "$E2E_AGENT_PID" 2>/dev/null; }

# e2e_agent_stop sends SIGTERM and waits up to 60 s (then SIGKILL); sets E2E_AGENT_RC.
e2e_agent_stop() {
	E2E_AGENT_RC=
	[[ -n $E2E_AGENT_PID ]] || return 0
	if kill -0 "$E2E_AGENT_PID" 2>/dev/null; then
		kill -TERM "$E2E_AGENT_PID"
		local end=$((SECONDS + 60))
		while kill -0 "$E2E_AGENT_PID" 2>/dev/null && ((SECONDS < end)); do sleep 0.5; done
		if kill -0 "$E2E_AGENT_PID" 2>/dev/null; then
			e2e_log "agent $E2E_AGENT_PID ignored SIGTERM for 60 s: SIGKILL"
			kill -KILL "$E2E_AGENT_PID" 2>/dev/null || true
		fi
	fi
	wait "$E2E_AGENT_PID" 2>/dev/null
	E2E_AGENT_RC=$?
	e2e_log "agent $E2E_AGENT_PID exited with status $E2E_AGENT_RC"
	E2E_AGENT_PID=
}

# svc_json prints the nova-compute service of E2E_HOST as JSON (empty when absent).
svc_json() {
	osc compute service list --host "$E2E_HOST" --service nova-compute -f json | jq -c '.[0] // empty'
}

# svc_state prints "State Status" of the host's nova-compute service, e.g. "up enabled".
svc_state() { svc_json | jq -r '"\(.State) \(.Status)"'; }

# svc_db prints report_count and updated_at of the host's service straight from nova's
# cell DB: cheaper than the API for tight polling.
svc_db() {
	mariadb -N nova -e "SELECT report_count, updated_at FROM services WHERE host='$E2E_HOST' AND \`binary\`='nova-compute' AND deleted=0"
}

# e2e_cleanup_host removes everything the host left in the cloud: the nova-compute
# service (nova-api also deletes its compute nodes, host mapping and resource
# provider), a provider left behind anyway, the neutron agent, our OVS bridges and
# our state directory. Safe to run when nothing is there.
e2e_cleanup_host() {
	local id rp
	for id in $(osc compute service list --host "$E2E_HOST" --service nova-compute -f value -c ID 2>/dev/null); do
		osc compute service delete "$id" >/dev/null || echo "e2e cleanup: compute service delete $id failed" >&2
	done
	for rp in $(osc resource provider list --name "$E2E_HOST" -f value -c uuid 2>/dev/null); do
		osc resource provider delete "$rp" >/dev/null || echo "e2e cleanup: resource provider delete $rp failed" >&2
	done
	for id in $(osc network agent list --host "$E2E_HOST" -f value -c ID 2>/dev/null); do
		osc network agent delete "$id" >/dev/null || echo "e2e cleanup: network agent delete $id failed" >&2
	done
	ovs-vsctl --if-exists del-br "$E2E_BR_INT" -- --if-exists del-br "$E2E_BR_PHYS" 2>/dev/null || true
	rm -rf "$E2E_WORK/state"
}

# e2e_zone_create puts our host alone in an aggregate with its own availability zone
# (named after the host): servers booted in it, and their resizes, land nowhere else.
e2e_zone_create() {
	osc aggregate create --zone "$E2E_HOST" "$E2E_HOST-agg" >/dev/null
	osc aggregate add host "$E2E_HOST-agg" "$E2E_HOST" >/dev/null
}

# e2e_zone_remove undoes e2e_zone_create; safe when nothing is there.
e2e_zone_remove() {
	osc aggregate show "$E2E_HOST-agg" >/dev/null 2>&1 || return 0
	osc aggregate remove host "$E2E_HOST-agg" "$E2E_HOST" >/dev/null 2>&1 || true
	osc aggregate delete "$E2E_HOST-agg" >/dev/null 2>&1 || true
}

# e2e_host_up starts the agent, waits for its nova-compute service to be up (the suite
# stops when it is not) and maps the host into the cell.
e2e_host_up() {
	e2e_agent_start
	if wait_until 90 e2e_is_up; then
		pass "service: nova-compute on $E2E_HOST is up" "after ${WAITED}s"
	else
		fail "service: nova-compute on $E2E_HOST is up" "got '$(svc_state)'; agent log: $(tail -n 5 "$E2E_AGENT_LOG")"
		exit 1
	fi
	nova_manage cell_v2 discover_hosts >/dev/null
}

# e2e_is_up succeeds while the host's nova-compute service is up and enabled.
e2e_is_up() { [[ $(svc_state) == "up enabled" ]]; }

# e2e_guard CLEANUP_FN installs the suite's exit path: on any exit (a failed command
# included, with the line it failed at) run CLEANUP_FN, stop the agent, remove the host
# from the cloud, print the tally and exit non-zero if anything failed.
e2e_guard() {
	E2E_CLEANUP_FN=$1
	trap 'E2E_ERR_LINE=$LINENO' ERR
	trap _e2e_exit EXIT
}
_e2e_exit() {
	local rc=$?
	((rc == 0)) || fail "suite ran to its end" "aborted with status $rc near line ${E2E_ERR_LINE:-?}"
	e2e_log "cleanup: what the suite created, the agent, the host's records and bridges"
	"$E2E_CLEANUP_FN"
	e2e_agent_stop || true
	e2e_cleanup_host
	e2e_finish || exit 1
	exit "$rc"
}
