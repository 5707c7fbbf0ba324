#!/usr/bin/env bash
# The all-in-one demo (`make demo`): an OpenStack Zed control plane from Debian packages, this
# agent as the compute host, a Debian 12 QCOW2 image uploaded to Glance, and a server booted on a
# VLAN provider network. It then logs in over SSH through the instance's Neutron address from a
# network namespace attached to the physical bridge — standing for a machine on the VLAN — and
# prints what an operator would look at first. Idempotent: re-running reuses what exists.
#
# Environment: DEMO_KEEP=1 leaves the server running at the end (default: kept, use
# DEMO_CLEAN=1 to delete it); NCA_AIO_DIR as for tests/aio/up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}
DEMO_DIR=${DEMO_DIR:-/var/lib/nca-demo}
NET=nca-demo-net SUBNET=nca-demo-subnet SEGMENT=150 CIDR=192.0.2.0/24 GATEWAY=192.0.2.1
PEER_NS=nca-demo-peer PEER_IP=192.0.2.250
IMAGE=nca-debian12-small FLAVOR=nca.small KEY=nca-demo SERVER=nca-demo-1
_t0=$(date +%s.%N)
say() { printf '[demo %6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$_t0" 'BEGIN{print a-b}')" "$*"; }
die() { printf '[demo] FAILED: %s\n' "$*" >&2; exit 1; }

say "all-in-one control plane"
bash tests/aio/up.sh
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/admin-openrc"
mkdir -p "$DEMO_DIR"

say "building the agent"
make -s build

say "test image (debootstrap'ed Debian 12, compressed QCOW2; cached)"
QCOW=${NCA_IMAGES_DIR:-/var/cache/nca/images}/debian12-small-mbr-c.qcow2
[[ -s $QCOW ]] || bash tests/images/build.sh small
[[ -s $QCOW ]] || die "image $QCOW was not built"
if ! openstack image show "$IMAGE" >/dev/null 2>&1; then
	say "uploading $QCOW to Glance as $IMAGE"
	openstack image create --disk-format qcow2 --container-format bare --public \
		--file "$QCOW" "$IMAGE" >/dev/null
fi

say "network, flavor and keypair"
if ! openstack network show "$NET" >/dev/null 2>&1; then
	openstack network create --share --provider-network-type vlan \
		--provider-physical-network physnet1 --provider-segment "$SEGMENT" "$NET" >/dev/null
fi
if ! openstack subnet show "$SUBNET" >/dev/null 2>&1; then
	openstack subnet create --network "$NET" --subnet-range "$CIDR" --gateway "$GATEWAY" \
		--no-dhcp --dns-nameserver "$GATEWAY" "$SUBNET" >/dev/null
fi
# The machines outside neutron on this VLAN (the demo's peer, the boot bench's peer) have
# fixed addresses in the subnet; a port holding each keeps neutron from giving it to an
# instance (the bench once got its own peer's address and could never reach it).
for ip in "$PEER_IP" 192.0.2.249; do
	openstack port show "nca-reserved-$ip" >/dev/null 2>&1 ||
		openstack port create --network "$NET" --fixed-ip "subnet=$SUBNET,ip-address=$ip" \
			--device-owner nca:reserved "nca-reserved-$ip" >/dev/null ||
		echo "demo: $ip is already an instance's; delete that instance to reserve it" >&2
done
openstack flavor show "$FLAVOR" >/dev/null 2>&1 ||
	openstack flavor create --vcpus 1 --ram 512 --disk 4 "$FLAVOR" >/dev/null
[[ -f $DEMO_DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -f "$DEMO_DIR/id_ed25519"
openstack keypair show "$KEY" >/dev/null 2>&1 ||
	openstack keypair create --public-key "$DEMO_DIR/id_ed25519.pub" "$KEY" >/dev/null

say "starting nova-container-agent for host nca-1"
bash tests/agent.sh start
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/env"
for _ in $(seq 60); do
	st=$(openstack compute service list --service nova-compute --host nca-1 -f value -c State 2>/dev/null || true)
	[[ $st == up ]] && break
	sleep 2
done
[[ $st == up ]] || die "the agent did not register (log: $(bash tests/agent.sh log))"
nova-manage --config-file "$NCA_AIO_DIR/etc/nova/nova.conf" cell_v2 discover_hosts >/dev/null 2>&1 || true

say "booting $SERVER"
if ! openstack server show "$SERVER" >/dev/null 2>&1; then
	t0=$(date +%s.%N)
	openstack server create --image "$IMAGE" --flavor "$FLAVOR" --network "$NET" \
		--key-name "$KEY" --availability-zone nova:nca-1 --wait "$SERVER" >/dev/null ||
		die "server create failed: $(openstack server show "$SERVER" -f json -c fault 2>/dev/null)"
	say "ACTIVE after $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}') s"
fi
status=$(openstack server show "$SERVER" -f value -c status)
if [[ $status == SHUTOFF ]]; then
	say "$SERVER was shut off (host restarted?): starting it"
	openstack server start "$SERVER"
	for _ in $(seq 60); do
		status=$(openstack server show "$SERVER" -f value -c status)
		[[ $status == SHUTOFF ]] || break
		sleep 1
	done
fi
[[ $status == ACTIVE ]] || die "$SERVER is $status: $(openstack server show "$SERVER" -f value -c fault)"
ADDR=$(openstack server show "$SERVER" -f json -c addresses |
	/usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["addresses"]; print(list(a.values())[0][0])')
say "$SERVER has $ADDR on $NET"

say "a machine on VLAN $SEGMENT of physnet1 (netns $PEER_NS on br-phys)"
ip netns add "$PEER_NS" 2>/dev/null || true
if ! ip link show nca-demo-phy >/dev/null 2>&1; then
	ip link add nca-demo-phy type veth peer name nca-demo-eth
	ip link set nca-demo-eth netns "$PEER_NS"
	ip link set nca-demo-phy up
fi
# An access port tagged with the segment is what a switch port in that VLAN would be.
ovs-vsctl --may-exist add-port br-phys nca-demo-phy tag="$SEGMENT"
ip -n "$PEER_NS" addr replace "$PEER_IP/24" dev nca-demo-eth
ip -n "$PEER_NS" link set nca-demo-eth up
ip -n "$PEER_NS" link set lo up
# OVS's userspace datapath does not finish partial checksums: the peer checksums in software,
# as the agent makes its instances' veths do.
command -v ethtool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q ethtool >/dev/null
ip netns exec "$PEER_NS" ethtool -K nca-demo-eth tx off >/dev/null
ethtool -K nca-demo-phy tx off >/dev/null

say "ssh root@$ADDR from the VLAN"
ok=0
for _ in $(seq 60); do
	if ip netns exec "$PEER_NS" ssh -i "$DEMO_DIR/id_ed25519" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 -o LogLevel=ERROR "root@$ADDR" true 2>/dev/null; then
		ok=1
		break
	fi
	sleep 1
done
((ok)) || die "no SSH to $ADDR"
ip netns exec "$PEER_NS" ssh -i "$DEMO_DIR/id_ed25519" -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$ADDR" \
	'echo "hostname: $(hostname)"; free -m; echo "nproc: $(nproc)"; echo "systemctl is-system-running: $(systemctl is-system-running)"'

if [[ ${DEMO_CLEAN:-0} == 1 ]]; then
	say "cleaning up"
	openstack server delete --wait "$SERVER"
	ip netns del "$PEER_NS" 2>/dev/null || true
	ovs-vsctl --if-exists del-port br-phys nca-demo-phy
fi
say "done: the agent keeps running (bash tests/agent.sh stop; make aio-down)"
