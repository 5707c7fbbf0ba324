#!/usr/bin/env bash
# End to end: resize on the same host (nova.conf allow_resize_to_same_host = true, set by
# tests/aio/up.sh), confirm, resize again and revert, through the openstack CLI against
# our own agent (host nca-e2e-55). A host aggregate with its own availability zone holds
# only our host, so the scheduler can place the boot and the resize nowhere else.
# Checks nova's statuses and flavors, the instance actions, what the guest sees (nproc,
# free -m), that a file written before the resize survives, and placement: the
# provider's usage matches the flavor and no allocation is left on the migration.
set -euo pipefail
. "$(dirname "$0")/lib.bash"

[[ $(id -u) == 0 ]] || { echo "55-resize: must run as root" >&2; exit 1; }
for c in openstack nova-manage jq docker ovs-vsctl; do
	command -v "$c" >/dev/null || { echo "55-resize: missing $c (run tests/aio/up.sh)" >&2; exit 1; }
done

e2e_host "${NCA_E2E_HOST:-nca-e2e-55}"
AZ=$E2E_HOST
SERVER=$E2E_HOST-vm
FL_A=$E2E_HOST-a # 1 vCPU, 512 MB
FL_B=$E2E_HOST-b # 2 vCPU, 768 MB
IMAGE=${NCA_E2E_IMAGE:-nca-debian12-small}
NET=${NCA_E2E_NET:-nca-demo-net}
e2e_write_overlay "report_interval = 10"
e2e_build_agent

cleanup_cloud() {
	osc server delete --wait "$SERVER" >/dev/null 2>&1 || true
	e2e_zone_remove
	osc flavor delete "$FL_A" >/dev/null 2>&1 || true
	osc flavor delete "$FL_B" >/dev/null 2>&1 || true
}
# At the end the server must really be gone, whatever happened before.
final_cleanup() {
	cleanup_cloud
	if osc server show "$SERVER" >/dev/null 2>&1; then
		fail "cleanup: server deleted" "$SERVER still exists"
	else
		pass "cleanup: server deleted"
	fi
}
e2e_guard final_cleanup

e2e_log "leftovers of an earlier run: removing"
cleanup_cloud
e2e_cleanup_host
mkdir -p "$E2E_WORK/state"

# ------------------------------------------------------------------ host, zone, flavors
e2e_host_up
e2e_zone_create
osc flavor create --vcpus 1 --ram 512 --disk 4 "$FL_A" >/dev/null
osc flavor create --vcpus 2 --ram 768 --disk 4 "$FL_B" >/dev/null
RP=$(osc resource provider list --name "$E2E_HOST" -f value -c uuid)
[[ -n $RP ]] || { fail "resource provider of $E2E_HOST" "none"; exit 1; }

# ------------------------------------------------------------------ helpers
show() { osc server show "$SERVER" -f json; }
# wait_status STATUS: the status with no task in progress (ERROR ends the wait).
status_now() { show | jq -r '"\(.status) \(."OS-EXT-STS:task_state" // "None")"'; }
wait_status() {
	local want=$1 got
	for _ in $(seq 150); do
		got=$(status_now)
		[[ $got == "$want None" ]] && return 0
		[[ $got == ERROR* ]] && break
		sleep 2
	done
	echo "status $got, wanted $want" >&2
	return 1
}
flavor_now() { show | jq -r '.flavor | if type == "object" then .original_name // .name else . end' | sed 's/ (.*//'; }
ctr() { echo "nca-e2e-$E2E_HOST-$UUID"; }
guest() { docker exec "$(ctr)" "$@"; }
# guest_view: "nproc memMB" as the guest sees them (lxcfs /proc/meminfo, affinity).
guest_view() { echo "$(guest nproc) $(guest free -m | awk '/^Mem:/{print $2}')"; }
wait_guest() { for _ in $(seq 60); do guest true 2>/dev/null && return 0; sleep 1; done; return 1; }
usage() { osc resource provider usage show "$RP" -f json | jq -r 'map({(.resource_class): .usage}) | add | "\(.VCPU) \(.MEMORY_MB) \(.DISK_GB)"'; }
mig_uuid() {
	osc --os-compute-api-version 2.59 server migration list --server "$SERVER" -f json |
		jq -r 'sort_by(.Id) | last | .UUID'
}
mig_allocs() { osc resource provider allocation show "$1" -f json | jq length; }
events() { osc server event list "$SERVER" -f value -c Action | sort | uniq -c | awk '{print $2"x"$1}' | tr '\n' ' '; }

# ------------------------------------------------------------------ boot
osc server create --image "$IMAGE" --flavor "$FL_A" --network "$NET" --availability-zone "$AZ" --wait "$SERVER" >/dev/null || true
check "boot: ACTIVE in zone $AZ" wait_status ACTIVE
UUID=$(show | jq -r .id)
expect_eq "boot: on host $E2E_HOST" "$(show | jq -r '."OS-EXT-SRV-ATTR:host"')" "$E2E_HOST"
check "boot: guest answers docker exec" wait_guest
expect_eq "boot: guest sees 1 vCPU, 512 MB" "$(guest_view)" "1 512"
guest sh -c 'echo resize-survivor > /root/e2e-55.txt && sync'
expect_eq "placement: usage = $FL_A" "$(usage)" "1 512 4"

# ------------------------------------------------------------------ resize + confirm
osc server resize --flavor "$FL_B" "$SERVER"
check "resize: VERIFY_RESIZE" wait_status VERIFY_RESIZE
expect_eq "resize: still on $E2E_HOST" "$(show | jq -r '."OS-EXT-SRV-ATTR:host"')" "$E2E_HOST"
expect_eq "resize: flavor shown is $FL_B" "$(flavor_now)" "$FL_B"
check "resize: guest answers" wait_guest
expect_eq "resize: guest sees 2 vCPU, 768 MB" "$(guest_view)" "2 768"
expect_eq "resize: file written before survives" "$(guest cat /root/e2e-55.txt)" "resize-survivor"
MIG1=$(mig_uuid)
expect_eq "resize: placement holds new + old flavor (instance + migration)" "$(usage)" "3 1280 8"
osc server resize confirm "$SERVER"
check "confirm: ACTIVE" wait_status ACTIVE
expect_eq "confirm: flavor $FL_B" "$(flavor_now)" "$FL_B"
expect_eq "confirm: guest still sees 2 vCPU, 768 MB" "$(guest_view)" "2 768"
expect_eq "confirm: placement usage = $FL_B" "$(usage)" "2 768 4"
expect_eq "confirm: migration $MIG1 holds no allocation" "$(mig_allocs "$MIG1")" "0"
expect_eq "confirm: migration status" "$(osc --os-compute-api-version 2.59 server migration list --server "$SERVER" -f json | jq -r --arg u "$MIG1" '.[] | select(.UUID == $u) | .Status')" "confirmed"

# ------------------------------------------------------------------ resize + revert
osc server resize --flavor "$FL_A" "$SERVER"
check "resize back: VERIFY_RESIZE" wait_status VERIFY_RESIZE
expect_eq "resize back: guest sees 1 vCPU, 512 MB" "$(guest_view)" "1 512"
guest sh -c 'echo written-in-verify > /root/e2e-55-b.txt && sync'
MIG2=$(mig_uuid)
osc server resize revert "$SERVER"
check "revert: ACTIVE" wait_status ACTIVE
expect_eq "revert: the old flavor $FL_B is back" "$(flavor_now)" "$FL_B"
check "revert: guest answers" wait_guest
expect_eq "revert: guest sees 2 vCPU, 768 MB again" "$(guest_view)" "2 768"
expect_eq "revert: file from before the first resize survives" "$(guest cat /root/e2e-55.txt)" "resize-survivor"
expect_eq "revert: file written while VERIFY_RESIZE survives (same container)" "$(guest cat /root/e2e-55-b.txt)" "written-in-verify"
expect_eq "revert: placement usage = $FL_B" "$(usage)" "2 768 4"
expect_eq "revert: migration $MIG2 holds no allocation" "$(mig_allocs "$MIG2")" "0"
expect_eq "revert: migration status" "$(osc --os-compute-api-version 2.59 server migration list --server "$SERVER" -f json | jq -r --arg u "$MIG2" '.[] | select(.UUID == $u) | .Status')" "reverted"

ev=$(events)
case $ev in
*confirmResizex1*resizex2*revertResizex1*) pass "server event list: create, 2 resize, confirmResize, revertResize" "$ev" ;;
*) fail "server event list: create, 2 resize, confirmResize, revertResize" "$ev" ;;
esac
# The compute's own events inside the actions (nova's wrap_instance_event).
req=$(osc server event list "$SERVER" -f json | jq -r '[.[] | select(.Action == "revertResize")][0]."Request ID"')
evnames=$(osc server event show "$SERVER" "$req" -f json | jq -r '[.events[].event] | sort | join(",")')
expect_eq "revert action: compute events" "$evnames" "compute_finish_revert_resize,compute_revert_resize"
