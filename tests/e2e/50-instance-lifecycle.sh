#!/usr/bin/env bash
# End to end on the all-in-one with the real agent (host nca-1): boot a VM-like container from the
# Debian 12 QCOW2 through `openstack server create`, check it from inside over SSH on its Neutron
# address, then drive nova's operations and check the states nova shows after each.
# Uses tests/demo.sh for the shared setup (image, network, flavor, keypair, agent, VLAN peer).
set -euo pipefail
cd "$(dirname "$0")/../.."
NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}
DEMO_DIR=${DEMO_DIR:-/var/lib/nca-demo}
SERVER=nca-e2e-life
failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { # DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}

bash tests/demo.sh >/tmp/nca-e2e-demo.log 2>&1 || { tail -20 /tmp/nca-e2e-demo.log; fail "demo setup"; exit 1; }
pass "demo: server booted and reachable over SSH (log /tmp/nca-e2e-demo.log)"
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/admin-openrc"

field() { openstack server show "$SERVER" -f json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin).get('$1') or '')"; }
# POWER is nova's power_state integer as the API shows it: 1 running, 3 paused, 4 shutdown.
wait_state() { # STATUS [POWER] — waits for the status with no task in progress
	local want=$1 power=${2:-} s t p
	for _ in $(seq 120); do
		read -r s t p < <(openstack server show "$SERVER" -f json | /usr/bin/python3 -c \
			'import json,sys; d=json.load(sys.stdin); print(d["status"], d.get("OS-EXT-STS:task_state") or "None", d.get("OS-EXT-STS:power_state"))')
		if [[ $s == "$want" && $t == None && (-z $power || $p == "$power") ]]; then return 0; fi
		[[ $s == ERROR ]] && break
		sleep 1
	done
	echo "  $SERVER: status=$s task=$t power=$p, wanted $want ${power:+power $power}" >&2
	return 1
}
ADDR=""
guest() { ip netns exec nca-demo-peer ssh -i "$DEMO_DIR/id_ed25519" -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 -o LogLevel=ERROR "root@$ADDR" "$@"; }
wait_ssh() { for _ in $(seq 60); do guest true 2>/dev/null && return 0; sleep 1; done; return 1; }

openstack server delete --wait "$SERVER" >/dev/null 2>&1 || true
t0=$(date +%s.%N)
openstack server create --image nca-debian12-small --flavor nca.small --network nca-demo-net \
	--key-name nca-demo --availability-zone nova:nca-1 --wait "$SERVER" >/dev/null || true
check "boot: ACTIVE, power 1 running ($(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}') s)" wait_state ACTIVE 1
UUID=$(field id)
ADDR=$(openstack server show "$SERVER" -f json -c addresses |
	/usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["addresses"]; print(list(a.values())[0][0])')
check "boot: SSH over the Neutron address $ADDR" wait_ssh
check "port ACTIVE in neutron, bound to nca-1, vif_type ovs" bash -c \
	"openstack port list --server $SERVER -f json --long | /usr/bin/python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; sys.exit(0 if p[\"Status\"]==\"ACTIVE\" else 1)' &&
	 openstack port show \$(openstack port list --server $SERVER -f value -c ID) -f json | /usr/bin/python3 -c 'import json,sys; p=json.load(sys.stdin); sys.exit(0 if p[\"binding_host_id\"]==\"nca-1\" and p[\"binding_vif_type\"]==\"ovs\" else 1)'"
check "inside: free -m shows the flavor's 512 MB" bash -c "[[ \$(ip netns exec nca-demo-peer ssh -i $DEMO_DIR/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$ADDR \"free -m | awk '/^Mem:/{print \\\$2}'\") == 512 ]]"
check "inside: nproc = 1 vCPU" bash -c "[[ \$(ip netns exec nca-demo-peer ssh -i $DEMO_DIR/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$ADDR nproc) == 1 ]]"
check "inside: systemd running, no failed units" bash -c "[[ \$(ip netns exec nca-demo-peer ssh -i $DEMO_DIR/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$ADDR 'systemctl is-system-running --wait') == running ]]"
caps=$(guest "grep CapBnd /proc/1/status | awk '{print \$2}'")
check "inside: CAP_SYS_MODULE and CAP_SYS_TIME absent (CapBnd $caps)" /usr/bin/python3 -c "import sys; c=int('$caps',16); sys.exit(0 if not c & (1<<16) and not c & (1<<25) else 1)"
check "inside: the host's cgroup hierarchy is not writable" bash -c "! ip netns exec nca-demo-peer ssh -i $DEMO_DIR/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$ADDR 'mkdir /sys/fs/cgroup/memory/../../nca-escape-test 2>/dev/null || echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null' && [[ ! -d /sys/fs/cgroup/memory/nca-escape-test ]]"

openstack console log show --lines 5 "$SERVER" >/tmp/nca-e2e-console.txt 2>&1
check "console log: get_console_output answers" test -s /tmp/nca-e2e-console.txt

openstack server stop "$SERVER"
check "stop: SHUTOFF, power 4 shutdown" wait_state SHUTOFF 4
openstack server start "$SERVER"
check "start: ACTIVE, power 1 running" wait_state ACTIVE 1
check "start: SSH again (network kept)" wait_ssh
openstack server reboot --soft "$SERVER"
check "soft reboot: ACTIVE" wait_state ACTIVE 1
openstack server reboot --hard "$SERVER"
check "hard reboot: ACTIVE" wait_state ACTIVE 1
check "reboot: SSH again" wait_ssh
openstack server pause "$SERVER"
check "pause: PAUSED" wait_state PAUSED 3
openstack server unpause "$SERVER"
check "unpause: ACTIVE" wait_state ACTIVE 1
openstack server suspend "$SERVER"
check "suspend: SUSPENDED" wait_state SUSPENDED
openstack server resume "$SERVER"
check "resume: ACTIVE" wait_state ACTIVE 1
check "resume: SSH again" wait_ssh

guest 'systemctl reboot' >/dev/null 2>&1 || true
sleep 3
check "in-guest reboot: stays ACTIVE and comes back" wait_ssh
check "in-guest reboot: nova still shows ACTIVE" wait_state ACTIVE 1
guest 'systemctl poweroff' >/dev/null 2>&1 || true
check "in-guest poweroff: SHUTOFF like a VM" wait_state SHUTOFF 4
openstack server start "$SERVER"
check "start after poweroff: ACTIVE" wait_state ACTIVE 1
check "start after poweroff: SSH again" wait_ssh

# Snapshot: a QCOW2 in Glance that boots as a new instance with the data written before.
SNAP=nca-e2e-life-snap SNAPVM=nca-e2e-life-fromsnap
openstack server delete --wait "$SNAPVM" >/dev/null 2>&1 || true
for i in $(openstack image list --name "$SNAP" -f value -c ID); do openstack image delete "$i"; done
guest 'echo snapshot-survivor > /root/e2e-snapshot.txt && sync'
t0=$(date +%s.%N)
SNAP_ID=$(openstack server image create --name "$SNAP" "$SERVER" -f value -c id)
snap_active() {
	for _ in $(seq 300); do
		[[ $(openstack image show "$SNAP_ID" -f value -c status) == active ]] && return 0
		sleep 2
	done
	return 1
}
check "snapshot: image active in Glance ($(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.0f", a-b}') s after the request)" snap_active
check "snapshot: disk_format qcow2, container_format bare" bash -c "[[ \"\$(openstack image show $SNAP_ID -f value -c disk_format -c container_format | tr '\n' ' ')\" == 'bare qcow2 ' ]]"
check "snapshot: the instance is ACTIVE again, no task" wait_state ACTIVE 1
openstack server create --image "$SNAP_ID" --flavor nca.small --network nca-demo-net --key-name nca-demo \
	--availability-zone nova:nca-1 --wait "$SNAPVM" >/dev/null || true
snapvm_ok() { [[ $(openstack server show "$SNAPVM" -f value -c status) == ACTIVE ]]; }
check "snapshot: boots as a new instance (ACTIVE)" snapvm_ok
SNAPVM_ADDR=$(openstack server show "$SNAPVM" -f json -c addresses |
	/usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["addresses"]; print(list(a.values())[0][0])' 2>/dev/null || true)
snapvm_file() {
	for _ in $(seq 60); do
		out=$(ip netns exec nca-demo-peer ssh -i "$DEMO_DIR/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
			-o ConnectTimeout=3 -o LogLevel=ERROR "root@$SNAPVM_ADDR" cat /root/e2e-snapshot.txt 2>/dev/null) && [[ $out == snapshot-survivor ]] && return 0
		sleep 1
	done
	return 1
}
check "snapshot: the new instance answers SSH and has the file written before the snapshot" snapvm_file
openstack server delete --wait "$SNAPVM" >/dev/null 2>&1 || true
openstack image delete "$SNAP_ID" >/dev/null 2>&1 || true

# Rebuild: a fresh root from the image, same port and address.
guest 'echo before-rebuild > /root/e2e-rebuild.txt && sync'
openstack server rebuild --image nca-debian12-small "$SERVER" >/dev/null
check "rebuild: ACTIVE" wait_state ACTIVE 1
check "rebuild: same address $ADDR, SSH again" wait_ssh
check "rebuild: the root is fresh (the file written before is gone)" bash -c "! ip netns exec nca-demo-peer ssh -i $DEMO_DIR/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@$ADDR test -e /root/e2e-rebuild.txt"

# set_admin_password: the guest's own chpasswd, as a guest agent does for a VM.
openstack server set --password 'Nca-e2e-Pw1' "$SERVER"
pw_ok() { guest 'h=$(getent shadow root | cut -d: -f2); perl -e "exit(crypt(\$ARGV[0], \$ARGV[1]) eq \$ARGV[1] ? 0 : 1)" Nca-e2e-Pw1 "$h"'; }
check "set password: root's shadow hash matches the new password (perl crypt inside)" pw_ok
check "set password: ACTIVE, no task left" wait_state ACTIVE 1

actions=$(openstack server event list "$SERVER" -f value -c Action | tr '\n' ' ')
check "instance actions recorded (${actions})" bash -c "[[ '$actions' == *create* && '$actions' == *stop* && '$actions' == *reboot* && '$actions' == *pause* && '$actions' == *createImage* && '$actions' == *rebuild* ]]"

openstack server delete --wait "$SERVER"
check "delete: server gone" bash -c "! openstack server show $SERVER >/dev/null 2>&1"
check "delete: no container left" bash -c "[[ -z \$(docker ps -aq --filter label=io.nca.instance=$UUID) ]]"
check "delete: no port left" bash -c "[[ -z \$(openstack port list --device-id $UUID -f value -c ID) ]]"
check "delete: no allocation left" bash -c "[[ \$(openstack resource provider allocation show $UUID -f value 2>/dev/null | wc -l) == 0 ]]"

echo "instance lifecycle: $failures failed"
((failures == 0))
