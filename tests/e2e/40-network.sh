#!/usr/bin/env bash
# End to end: instances on the VMs' Neutron networks, through our own agent (host nca-e2e-40,
# its own bridges, in its own availability zone so the scheduler can place nothing elsewhere).
#
# Two VLAN provider networks on physnet1 with the SAME subnet (VLAN 141 and 142), so only
# VLAN separation keeps them apart: two instances on VLAN 141, one on VLAN 142, and two
# "KVM guests" — network namespaces on our physical bridge on access ports of VLAN 141 and
# 142. Checks: neutron binds every port to us (ACTIVE, vif_type ovs) and tells nova
# network-vif-plugged; instance ↔ instance and instance ↔ VM traffic on one VLAN, none
# across VLANs; then, after each of in-guest reboot, docker restart, agent kill -9 + start,
# dockerd restart, a sandbox restart followed by an in-guest reboot, and a simulated host
# reboot, the VM's ping answers again within 5 s and nothing leaks or doubles (OVS ports,
# veths, sandboxes counted before and after). Deleting everything leaves no port, veth,
# sandbox or VLAN flow behind. Prints the port-create-to-first-ping time.
set -euo pipefail
. "$(dirname "$0")/lib.bash"

[[ $(id -u) == 0 ]] || { echo "40-network: must run as root" >&2; exit 1; }
for c in openstack nova-manage jq docker ovs-vsctl ovs-ofctl ip ethtool; do
	command -v "$c" >/dev/null || { echo "40-network: missing $c (run tests/aio/up.sh)" >&2; exit 1; }
done

# NCA_E2E_NET_MODE=compat runs the same checks with the agent in compatibility mode: it only
# plugs ports, and a real neutron-openvswitch-agent owns tags and flows (tests/e2e/41-*.sh).
MODE=${NCA_E2E_NET_MODE:-full}
case $MODE in
full) e2e_host "${NCA_E2E_HOST:-nca-e2e-40}" ;;
compat) e2e_host "${NCA_E2E_HOST:-nca-e2e-41}" ;;
*) echo "40-network: NCA_E2E_NET_MODE must be full or compat, not $MODE" >&2; exit 1 ;;
esac
AZ=$E2E_HOST
FLAVOR=$E2E_HOST-fl
IMAGE=${NCA_E2E_IMAGE:-nca-debian12-small}
QCOW=${NCA_IMAGES_DIR:-/var/cache/nca/images}/debian12-small-mbr-c.qcow2
NET_A=$E2E_HOST-v141 NET_B=$E2E_HOST-v142 CIDR=10.40.0.0/24
A1=$E2E_HOST-a1 A2=$E2E_HOST-a2 B1=$E2E_HOST-b1
IP_A1=10.40.0.11 IP_A2=10.40.0.12 IP_B1=10.40.0.13
VM_A=nca-e40-vma VM_B=nca-e40-vmb IP_VM_A=10.40.0.250 IP_VM_B=10.40.0.251
e2e_write_overlay "report_interval = 10
resume_guests_state_on_host_boot = true"
# The overlay ends with its [container] section.
[[ $MODE == compat ]] && echo "neutron_agent_mode = compat" >>"$E2E_OVERLAY"
e2e_build_agent

# Compatibility mode: neutron's own Open vSwitch agent for our host and bridges.
OVS_AGENT_PID=
ovs_agent_start() {
	local conf=$E2E_WORK/openvswitch_agent.ini url
	url=$(awk -F' *= *' '$1 == "transport_url" {print $2; exit}' "$NCA_AGENT_CONF")
	cat >"$conf" <<EOF
# neutron-openvswitch-agent beside nova-container-agent in compatibility mode (tests/e2e/40-network.sh).
[DEFAULT]
host = $E2E_HOST
transport_url = $url
[agent]
tunnel_types =
root_helper = env
[ovs]
integration_bridge = $E2E_BR_INT
bridge_mappings = physnet1:$E2E_BR_PHYS
datapath_type = netdev
of_listen_port = 6641
ovsdb_connection = unix:/var/run/openvswitch/db.sock
[securitygroup]
firewall_driver = noop
EOF
	ovs-vsctl --may-exist add-br "$E2E_BR_PHYS" -- set bridge "$E2E_BR_PHYS" datapath_type=netdev
	setsid /usr/bin/neutron-openvswitch-agent --config-file "$conf" >>"$E2E_WORK/neutron-openvswitch-agent.log" 2>&1 </dev/null &
	OVS_AGENT_PID=$!
	e2e_log "neutron-openvswitch-agent started: pid $OVS_AGENT_PID, log $E2E_WORK/neutron-openvswitch-agent.log"
}
ovs_agent_stop() {
	[[ -n $OVS_AGENT_PID ]] || return 0
	kill -TERM "$OVS_AGENT_PID" 2>/dev/null || true
	for _ in $(seq 40); do kill -0 "$OVS_AGENT_PID" 2>/dev/null || break; sleep 0.5; done
	kill -KILL "$OVS_AGENT_PID" 2>/dev/null || true
	wait "$OVS_AGENT_PID" 2>/dev/null || true
	OVS_AGENT_PID=
}

remove_vm() { # NETNS
	ip netns del "$1" 2>/dev/null || true
	ovs-vsctl --if-exists del-port "$E2E_BR_PHYS" "$1-h" 2>/dev/null || true
	ip link del "$1-h" 2>/dev/null || true
}
cleanup_cloud() {
	local s
	for s in "$A1" "$A2" "$B1"; do osc server delete --wait "$s" >/dev/null 2>&1 || true; done
	for s in "$NET_A" "$NET_B"; do osc network delete "$s" >/dev/null 2>&1 || true; done
	e2e_zone_remove
	osc flavor delete "$FLAVOR" >/dev/null 2>&1 || true
	remove_vm "$VM_A"
	remove_vm "$VM_B"
	ovs_agent_stop
}
e2e_guard cleanup_cloud

e2e_log "leftovers of an earlier run: removing"
cleanup_cloud
e2e_agent_stop || true
e2e_cleanup_host
mkdir -p "$E2E_WORK/state"

# ------------------------------------------------------------------ host, zone, image, networks
if [[ $MODE == compat ]]; then
	ovs_agent_start
	l2_ready() { ovs-vsctl br-exists "$E2E_BR_INT" && ovs-vsctl list-ports "$E2E_BR_INT" | grep -q "^int-"; }
	check "compat: neutron-openvswitch-agent set up $E2E_BR_INT and its patch to $E2E_BR_PHYS" wait_until 90 l2_ready
fi
e2e_host_up
l2_alive() { [[ $(osc network agent list --host "$E2E_HOST" -f json | jq -r '.[0].Alive // empty') == true ]]; }
l2_agents() { osc network agent list --host "$E2E_HOST" -f json | jq length; }
if [[ $MODE == full ]]; then
	check "neutron: the agent's L2 role reports as an alive Open vSwitch agent" wait_until 60 l2_alive
else
	check "neutron: neutron-openvswitch-agent reports alive for $E2E_HOST" wait_until 60 l2_alive
	expect_eq "compat: one L2 agent for the host (ours does not report)" "$(l2_agents)" 1
fi
e2e_zone_create
osc flavor create --vcpus 1 --ram 256 --disk 4 "$FLAVOR" >/dev/null
if ! osc image show "$IMAGE" >/dev/null 2>&1; then
	[[ -s $QCOW ]] || bash "$E2E_ROOT/tests/images/build.sh" small
	osc image create --disk-format qcow2 --container-format bare --public --file "$QCOW" "$IMAGE" >/dev/null
fi
for n in "$NET_A:141" "$NET_B:142"; do
	osc network create --provider-network-type vlan --provider-physical-network physnet1 \
		--provider-segment "${n#*:}" "${n%%:*}" >/dev/null
	osc subnet create --network "${n%%:*}" --subnet-range "$CIDR" --no-dhcp --gateway none "${n%%:*}-sub" >/dev/null
done

# A KVM guest on the physical network: a namespace on an access port of the VLAN, as a
# switch port in that VLAN would be. OVS's userspace datapath does not complete partial
# checksums, so it checksums in software like the agent's own veths.
add_vm() { # NETNS VLAN IP
	ip netns add "$1"
	ip link add "$1-h" type veth peer name "$1-g"
	ip link set "$1-g" netns "$1"
	ip link set "$1-h" up
	ovs-vsctl --may-exist add-port "$E2E_BR_PHYS" "$1-h" tag="$2"
	ip -n "$1" addr add "$3/24" dev "$1-g"
	ip -n "$1" link set "$1-g" up
	ip -n "$1" link set lo up
	ip netns exec "$1" ethtool -K "$1-g" tx off >/dev/null
	ethtool -K "$1-h" tx off >/dev/null
}
add_vm "$VM_A" 141 "$IP_VM_A"
add_vm "$VM_B" 142 "$IP_VM_B"

# ------------------------------------------------------------------ helpers
ctr() { echo "nca-e2e-$E2E_HOST-$(osc server show "$1" -f value -c id)"; }
vm_ping() { ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
guest_ping() { docker exec "$(ctr "$1")" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
no_guest_ping() { ! docker exec "$(ctr "$1")" ping -c 2 -W 1 "$2" >/dev/null 2>&1; }
no_vm_ping() { ! ip netns exec "$1" ping -c 2 -W 1 "$2" >/dev/null 2>&1; }
status_of() { osc server show "$1" -f json | jq -r '"\(.status) \(."OS-EXT-STS:task_state" // "None") \(."OS-EXT-STS:power_state")"'; }
wait_active() { # SERVER
	local got
	for _ in $(seq 120); do
		got=$(status_of "$1")
		[[ $got == "ACTIVE None 1" ]] && return 0
		[[ $got == ERROR* ]] && break
		sleep 2
	done
	echo "$1: $got" >&2
	return 1
}
# resume_time: seconds (0.1 s resolution) until VM_A's ping to A1 answers again, at most 30.
resume_time() {
	local t0 now
	t0=$(date +%s.%N)
	for _ in $(seq 60); do
		if vm_ping "$VM_A" "$IP_A1"; then
			now=$(date +%s.%N)
			awk -v a="$now" -v b="$t0" 'BEGIN{printf "%.1f", a-b}'
			return 0
		fi
		sleep 0.5
	done
	echo "none"
	return 1
}
OUR_TAPS=()
ports_on_bridge() { ovs-vsctl list-ports "$E2E_BR_INT" | grep -c '^tap' || true; }
host_veths() { # the host ends of our instances' ports that exist
	local n=0 t
	for t in "${OUR_TAPS[@]}"; do ip link show "$t" >/dev/null 2>&1 && n=$((n + 1)); done
	echo "$n"
}
running_sandboxes() { docker ps --format '{{.Names}}' | grep -c "^nca-e2e-$E2E_HOST-.*-sandbox$" || true; }
counts() { echo "ovs-ports=$(ports_on_bridge) veths=$(host_veths) sandboxes=$(running_sandboxes)"; }

# ------------------------------------------------------------------ boot three instances
NA=$(osc network show "$NET_A" -f value -c id)
NB=$(osc network show "$NET_B" -f value -c id)
t_port=$(date +%s.%N)
PORT_A1=$(osc port create --network "$NA" --fixed-ip "ip-address=$IP_A1" "$A1-port" -f value -c id)
osc server create --image "$IMAGE" --flavor "$FLAVOR" --port "$PORT_A1" --availability-zone "$AZ" "$A1" >/dev/null
first_ping=none
for _ in $(seq 240); do
	if vm_ping "$VM_A" "$IP_A1"; then
		first_ping=$(awk -v a="$(date +%s.%N)" -v b="$t_port" 'BEGIN{printf "%.1f", a-b}')
		break
	fi
	sleep 0.5
done
[[ $first_ping != none ]] && pass "figure: port create → first ping of the new instance from the VLAN" "${first_ping} s" ||
	fail "figure: port create → first ping" "no ping within 120 s"
osc server create --image "$IMAGE" --flavor "$FLAVOR" --nic "net-id=$NA,v4-fixed-ip=$IP_A2" --availability-zone "$AZ" "$A2" >/dev/null
osc server create --image "$IMAGE" --flavor "$FLAVOR" --nic "net-id=$NB,v4-fixed-ip=$IP_B1" --availability-zone "$AZ" "$B1" >/dev/null
for s in "$A1" "$A2" "$B1"; do
	check "boot: $s ACTIVE, running" wait_active "$s"
done
for s in "$A1" "$A2" "$B1"; do
	p=$(osc port list --server "$s" -f value -c ID)
	got=$(osc port show "$p" -f json | jq -r '"\(.status) \(.binding_host_id) \(.binding_vif_type)"')
	expect_eq "neutron: port of $s ACTIVE, bound to $E2E_HOST, vif_type ovs" "$got" "ACTIVE $E2E_HOST ovs"
	if grep -q "'name': 'network-vif-plugged', 'status': 'completed', 'tag': '$p', 'code': 200" /var/log/nca-aio/neutron-server.log; then
		pass "nova: accepted network-vif-plugged for the port of $s (neutron-server's log, code 200)"
	else
		fail "nova: accepted network-vif-plugged for the port of $s" "no such event with code 200 in neutron-server's log"
	fi
done
tag_of() { ovs-vsctl get port "tap${1:0:11}" tag; }
PA1=$(osc port list --server "$A1" -f value -c ID)
PA2=$(osc port list --server "$A2" -f value -c ID)
PB1=$(osc port list --server "$B1" -f value -c ID)
OUR_TAPS=("tap${PA1:0:11}" "tap${PA2:0:11}" "tap${PB1:0:11}")
expect_eq "ovs: the two VLAN 141 ports share a local VLAN" "$(tag_of "$PA1")" "$(tag_of "$PA2")"
[[ $(tag_of "$PA1") != "$(tag_of "$PB1")" ]] && pass "ovs: the VLAN 142 port has another local VLAN" "$(tag_of "$PA1") vs $(tag_of "$PB1")" ||
	fail "ovs: the VLAN 142 port has another local VLAN" "both $(tag_of "$PB1")"

# ------------------------------------------------------------------ traffic and isolation
check "ping: $A1 → $A2 (same VLAN, instance to instance)" wait_until 20 guest_ping "$A1" "$IP_A2"
check "ping: $A2 → $A1" guest_ping "$A2" "$IP_A1"
check "ping: $A1 → the VLAN 141 VM" guest_ping "$A1" "$IP_VM_A"
check "ping: the VLAN 141 VM → $A2" vm_ping "$VM_A" "$IP_A2"
check "ping: the VLAN 142 VM → $B1" vm_ping "$VM_B" "$IP_B1"
check "ping: $B1 → the VLAN 142 VM" guest_ping "$B1" "$IP_VM_B"
check "isolation: $A1 cannot reach $B1 (same subnet, VLAN 142)" no_guest_ping "$A1" "$IP_B1"
check "isolation: the VLAN 141 VM cannot reach $B1" no_vm_ping "$VM_A" "$IP_B1"
check "isolation: the VLAN 142 VM cannot reach $A1" no_vm_ping "$VM_B" "$IP_A1"

BASE=$(counts)
e2e_log "baseline: $BASE"
after() { # WHAT: ping resumption and leak counts after a disruption
	local t
	t=$(resume_time) && [[ $(awk -v t="$t" 'BEGIN{print (t <= 5)}') == 1 ]] &&
		pass "$1: the VM's ping to $A1 answers again within 5 s" "${t} s" ||
		fail "$1: the VM's ping to $A1 answers again within 5 s" "took ${t} s"
	expect_eq "$1: no OVS port, veth or sandbox leaked or doubled" "$(counts)" "$BASE"
}
wait_guest_up() { # SERVER: systemd inside answers again
	for _ in $(seq 60); do
		docker exec "$(ctr "$1")" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && return 0
		sleep 1
	done
	return 1
}

# in-guest reboot: PID 1 exits 129, the driver starts it again in the same namespace.
docker exec "$(ctr "$A1")" systemctl reboot || true
sleep 2
check "in-guest reboot: systemd back" wait_guest_up "$A1"
after "in-guest reboot"
check "in-guest reboot: still ACTIVE" wait_active "$A1"

# docker restart of the instance container: the sandbox and its namespace stay.
docker restart -t 10 "$(ctr "$A1")" >/dev/null
after "docker restart"
check "docker restart: back to ACTIVE" wait_active "$A1"

# agent kill -9, then start: init_host adopts the running guests, no re-plug doubles anything.
kill -KILL "$E2E_AGENT_PID"
wait "$E2E_AGENT_PID" 2>/dev/null || true
E2E_AGENT_PID=
after "agent killed (-9)"
e2e_agent_start
check "agent kill -9 + start: service up again" wait_until 90 e2e_is_up
after "agent kill -9 + start"
for s in "$A1" "$A2" "$B1"; do check "agent kill -9 + start: $s still ACTIVE" wait_active "$s"; done

# dockerd restart: live-restore keeps every container running while it is away.
dpid=$(cat /var/run/docker.pid)
kill -TERM "$dpid"
for _ in $(seq 60); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.5; done
bash "$E2E_ROOT/tests/aio/up.sh" >"$E2E_WORK/up-after-dockerd.log" 2>&1 ||
	{ fail "dockerd restart: up.sh started it again" "$(tail -5 "$E2E_WORK/up-after-dockerd.log")"; exit 1; }
check "dockerd restart: dockerd answers" docker info
after "dockerd restart"
check "dockerd restart: ping $A1 → $A2" guest_ping "$A1" "$IP_A2"

# The sandbox restarts under a running guest (new, empty namespace; the guest keeps the old
# one), then the guest reboots itself: it joins the new namespace, which must be plugged.
docker restart -t 1 "$(ctr "$A1")-sandbox" >/dev/null
docker exec "$(ctr "$A1")" systemctl reboot || true
sleep 2
check "sandbox restart + in-guest reboot: systemd back" wait_guest_up "$A1"
after "sandbox restart + in-guest reboot"

# Host reboot, as seen by the agent when it starts: the guest's container is dead, dockerd's
# restart policy brought the sandbox back with an empty namespace, the veth is gone and the
# bridge row is stale. init_host (resume_guests_state_on_host_boot) restarts and re-plugs it.
e2e_agent_stop
docker kill "$(ctr "$A1")" >/dev/null
docker restart -t 1 "$(ctr "$A1")-sandbox" >/dev/null
if vm_ping "$VM_A" "$IP_A1"; then fail "host reboot simulated: the guest is unreachable" "it still answers"; else pass "host reboot simulated: the guest is unreachable"; fi
e2e_agent_start
check "host reboot: service up again" wait_until 90 e2e_is_up
check "host reboot: $A1 ACTIVE and running again" wait_active "$A1"
after "host reboot + agent start"
check "host reboot: ping $A1 → $A2" guest_ping "$A1" "$IP_A2"
check "host reboot: isolation kept ($A1 cannot reach $B1)" no_guest_ping "$A1" "$IP_B1"

# ------------------------------------------------------------------ delete: nothing left
flows_for() { ovs-ofctl dump-flows "$E2E_BR_PHYS" | grep -c "mod_vlan_vid:$1" || true; }
[[ $(flows_for 141) -ge 1 ]] && pass "ovs: a translation flow to VLAN 141 exists while ports use it" || fail "ovs: a translation flow to VLAN 141 exists" "none on $E2E_BR_PHYS"
for s in "$A1" "$A2" "$B1"; do osc server delete --wait "$s" >/dev/null; done
osc port delete "$PORT_A1" >/dev/null 2>&1 || true
no_leftovers() { [[ $(counts) == "ovs-ports=0 veths=0 sandboxes=0" ]]; }
if wait_until 30 no_leftovers; then pass "delete: no OVS port, veth or sandbox left" "$(counts)"; else fail "delete: no OVS port, veth or sandbox left" "$(counts)"; fi
no_flows() { [[ $(flows_for 141) == 0 && $(flows_for 142) == 0 ]]; }
check "delete: the networks' VLAN translation flows are gone" wait_until 30 no_flows
expect_eq "delete: no container of ours left" "$(docker ps -aq --filter "name=nca-e2e-$E2E_HOST-" | wc -l)" 0
