#!/usr/bin/env bash
# End to end: the agent is killed (-9) while 10 servers build concurrently on it, then
# started again. init_host must leave every instance ACTIVE (running, reachable by nova's
# operations) or ERROR with a fault — none stuck in BUILD — with exactly one container per
# ACTIVE instance and none for the others; deleting them all then leaves no container, OVS
# port, neutron port or placement allocation behind. Own host nca-e2e-60 in its own zone.
set -euo pipefail
. "$(dirname "$0")/lib.bash"

[[ $(id -u) == 0 ]] || { echo "60-crash-during-builds: must run as root" >&2; exit 1; }
for c in openstack nova-manage jq docker ovs-vsctl; do
	command -v "$c" >/dev/null || { echo "60-crash-during-builds: missing $c (run tests/aio/up.sh)" >&2; exit 1; }
done

e2e_host "${NCA_E2E_HOST:-nca-e2e-60}"
AZ=$E2E_HOST FLAVOR=$E2E_HOST-fl NET=$E2E_HOST-net PREFIX=$E2E_HOST-vm
IMAGE=${NCA_E2E_IMAGE:-nca-debian12-small}
QCOW=${NCA_IMAGES_DIR:-/var/cache/nca/images}/debian12-small-mbr-c.qcow2
N=10
e2e_write_overlay "report_interval = 10"
e2e_build_agent

servers() { osc server list --name "^$PREFIX" -f json; }
cleanup_cloud() {
	local id
	for id in $(servers | jq -r '.[].ID'); do osc server delete "$id" >/dev/null 2>&1 || true; done
	for _ in $(seq 60); do [[ $(servers | jq length) == 0 ]] && break; sleep 2; done
	# A port a failed run left (the suite's last check reports it) would keep the network, and
	# its VLAN, from being deleted and fail every later run at its start.
	for id in $(osc port list --network "$NET" -f value -c id 2>/dev/null); do osc port delete "$id" >/dev/null 2>&1 || true; done
	osc network delete "$NET" >/dev/null 2>&1 || true
	e2e_zone_remove
	osc flavor delete "$FLAVOR" >/dev/null 2>&1 || true
}
e2e_guard cleanup_cloud

e2e_log "leftovers of an earlier run: removing"
cleanup_cloud
e2e_cleanup_host
mkdir -p "$E2E_WORK/state"

e2e_host_up
e2e_zone_create
osc flavor create --vcpus 1 --ram 128 --disk 1 "$FLAVOR" >/dev/null
if ! osc image show "$IMAGE" >/dev/null 2>&1; then
	[[ -s $QCOW ]] || bash "$E2E_ROOT/tests/images/build.sh" small
	osc image create --disk-format qcow2 --container-format bare --public --file "$QCOW" "$IMAGE" >/dev/null
fi
osc network create --provider-network-type vlan --provider-physical-network physnet1 --provider-segment 160 "$NET" >/dev/null
osc subnet create --network "$NET" --subnet-range 10.60.0.0/24 --no-dhcp --gateway none "$NET-sub" >/dev/null
RP=$(osc resource provider list --name "$E2E_HOST" -f value -c uuid)
# nova's default quota (10 instances, 20 cores) would refuse 10 more servers beside the other
# suites' and the demo's: the all-in-one's admin project is a test project.
osc quota set --instances 100 --cores 200 --ram 204800 "${OS_PROJECT_NAME:-admin}" >/dev/null

# ------------------------------------------------------------------ 10 builds, kill -9 midway
osc server create --image "$IMAGE" --flavor "$FLAVOR" --network "$NET" --availability-zone "$AZ" \
	--min "$N" --max "$N" "$PREFIX" >/dev/null
# Kill once the first containers exist: some builds are spawning, others still converting the
# image or waiting for a build slot.
spawning() { [[ $(docker ps -aq --filter "name=nca-e2e-$E2E_HOST-" | wc -l) -ge 1 ]]; }
wait_until 180 spawning || e2e_log "no container after 180 s: killing anyway"
states_before=$(servers | jq -r '[.[].Status] | group_by(.) | map("\(.[0])=\(length)") | join(" ")')
kill -KILL "$E2E_AGENT_PID"
wait "$E2E_AGENT_PID" 2>/dev/null || true
E2E_AGENT_PID=
pass "agent killed (-9) during the builds" "servers then: $states_before"

e2e_agent_start
check "agent restarted: service up again" wait_until 120 e2e_is_up
settled() { [[ $(servers | jq '[.[] | select(.Status != "ACTIVE" and .Status != "ERROR")] | length') == 0 ]]; }
check "every server ends ACTIVE or ERROR (none left in BUILD)" wait_until 300 settled
LIST=$(servers)
ACTIVE=$(jq '[.[] | select(.Status == "ACTIVE")] | length' <<<"$LIST")
ERRORS=$(jq '[.[] | select(.Status == "ERROR")] | length' <<<"$LIST")
expect_eq "all $N servers accounted for" "$((ACTIVE + ERRORS))" "$N"
e2e_log "after restart: $ACTIVE ACTIVE, $ERRORS ERROR"
nofault=0
for id in $(jq -r '.[] | select(.Status == "ERROR") | .ID' <<<"$LIST"); do
	msg=$(osc server show "$id" -f json | jq -r '.fault.message // empty')
	[[ -n $msg ]] || nofault=$((nofault + 1))
done
expect_eq "every ERROR server has a fault" "$nofault" 0
notrunning=0
for id in $(jq -r '.[] | select(.Status == "ACTIVE") | .ID' <<<"$LIST"); do
	[[ $(osc server show "$id" -f json | jq -r '."OS-EXT-STS:power_state"') == 1 ]] || notrunning=$((notrunning + 1))
	[[ $(docker inspect -f '{{.State.Running}}' "nca-e2e-$E2E_HOST-$id" 2>/dev/null) == true ]] || notrunning=$((notrunning + 1))
done
expect_eq "every ACTIVE server runs (power_state 1, container running)" "$notrunning" 0
ours() { docker ps -a --format '{{.Names}}' | grep "^nca-e2e-$E2E_HOST-" | grep -vc -- '-sandbox$' || true; }
expect_eq "one container per ACTIVE server, none for the others" "$(ours)" "$ACTIVE"
if ((ACTIVE > 0)); then
	id=$(jq -r '[.[] | select(.Status == "ACTIVE")][0].ID' <<<"$LIST")
	osc server stop "$id" >/dev/null
	stopped() { [[ $(osc server show "$id" -f value -c status) == SHUTOFF ]]; }
	check "an adopted ACTIVE server obeys nova (stop → SHUTOFF)" wait_until 60 stopped
fi

# ------------------------------------------------------------------ delete all: nothing left
for id in $(jq -r '.[].ID' <<<"$LIST"); do osc server delete "$id" >/dev/null; done
gone() { [[ $(servers | jq length) == 0 ]]; }
check "delete: all $N servers gone" wait_until 180 gone
expect_eq "delete: no container of ours left" "$(docker ps -aq --filter "name=nca-e2e-$E2E_HOST-" | wc -l)" 0
expect_eq "delete: no port left on $E2E_BR_INT" "$(ovs-vsctl list-ports "$E2E_BR_INT" 2>/dev/null | grep -c '^tap' || true)" 0
expect_eq "delete: no neutron port left on $NET" "$(osc port list --network "$NET" -f json | jq length)" 0
usage() { osc resource provider usage show "$RP" -f json | jq -r 'map(.usage) | add'; }
expect_eq "delete: no allocation left on the host's resource provider" "$(usage)" 0
