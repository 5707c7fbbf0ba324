#!/usr/bin/env bash
# fake-compute.sh start|stop|status HOST
#
# Runs the REAL Python nova-compute (Debian's python3-nova, compute_driver =
# fake.FakeDriver) as compute host HOST against the all-in-one, plus the real
# neutron-openvswitch-agent for HOST so neutron can bind ports there (ML2 binds a
# port only to a host with a live L2 agent mapping the physnet). It is the
# reference implementation our agent is compared with, and the benchmarks'
# baseline.
#
# The OVS agent gets private bridges (br-fi-<hash>, br-fp-<hash>), its own
# OpenFlow port and the OVSDB unix socket, so it never touches br-int / br-phys
# (the agent under test owns those) nor adds an OVS manager. FakeDriver plugs no
# VIFs, so the bridges stay empty. stop removes the bridges.
set -euo pipefail
_t0=$(date +%s.%N)
cd "$(dirname "$0")"
# shellcheck source=tests/aio/lib.sh
. ./lib.sh

usage() { die "usage: $0 start|stop|status HOST"; }
[[ $# == 2 ]] || usage
action=$1 host=$2
[[ $host =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] || die "bad host name: $host"

dir=$NCA_AIO_DIR/fake-compute/$host
conf=$dir/nova-compute.conf
ovsconf=$dir/openvswitch_agent.ini
h=$(printf '%s' "$host" | md5sum | cut -c1-6)
br_int=br-fi-$h br_phys=br-fp-$h
of_port=$((20000 + 0x${h:0:4} % 10000))
nc=fake-compute-$host na=fake-ovs-agent-$host

ks_auth() {
	cat <<EOF
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $AIO_PASS
region_name = $AIO_REGION
EOF
}

start() {
	[[ -f $NCA_AIO_DIR/admin-openrc ]] || die "the all-in-one is not up: run tests/aio/up.sh"
	dpkg-query -W -f='${db:Status-Status}' python3-nova 2>/dev/null | grep -qx installed ||
		die "python3-nova is not installed: run tests/aio/up.sh"
	mkdir -p "$dir/instances" "$dir/lock"
	write_if_changed "$conf" <<EOF || true
# Reference nova-compute (FakeDriver) for host $host, written by tests/aio/fake-compute.sh.
# No [database] / [api_database]: a compute reaches the DB only through nova-conductor.
[DEFAULT]
host = $host
transport_url = $AIO_RABBIT_URL
compute_driver = fake.FakeDriver
report_interval = 10
state_path = $dir
instances_path = $dir/instances
my_ip = 127.0.0.1
[oslo_concurrency]
lock_path = $dir/lock
[vnc]
enabled = false
[placement]
$(ks_auth placement)
[neutron]
$(ks_auth neutron)
[glance]
$(ks_auth glance)
[service_user]
send_service_user_token = true
$(ks_auth nova)
EOF
	write_if_changed "$ovsconf" <<EOF || true
# Reference neutron-openvswitch-agent for host $host, written by tests/aio/fake-compute.sh.
[DEFAULT]
host = $host
transport_url = $AIO_RABBIT_URL
[agent]
tunnel_types =
# We run as root; "env" keeps neutron's "root_helper + argv" a no-op (no sudo here).
root_helper = env
[ovs]
integration_bridge = $br_int
bridge_mappings = physnet1:$br_phys
datapath_type = netdev
of_listen_port = $of_port
ovsdb_connection = unix:/var/run/openvswitch/db.sock
[securitygroup]
firewall_driver = noop
EOF
	ovs-vsctl --may-exist add-br "$br_phys" -- set bridge "$br_phys" datapath_type=netdev
	if ! owned_pid "$na" >/dev/null; then
		say "$na: starting (bridges $br_int, $br_phys; OpenFlow :$of_port)"
		start_bg "$na" /usr/bin/neutron-openvswitch-agent --config-file "$ovsconf"
	fi
	if ! owned_pid "$nc" >/dev/null; then
		say "$nc: starting nova-compute with FakeDriver"
		start_bg "$nc" $PY -c 'from nova.cmd.compute import main; main()' --config-file "$conf"
	fi
	# Ready when nova has a fresh service record and neutron an alive agent for HOST.
	compute_up() {
		[[ $(mariadb -N nova -e "SELECT COUNT(*) FROM services WHERE host='$host' AND \`binary\`='nova-compute' AND deleted=0 AND report_count>0 AND updated_at > UTC_TIMESTAMP() - INTERVAL 60 SECOND") -ge 1 ]]
	}
	agent_up() {
		[[ $(mariadb -N neutron -e "SELECT COUNT(*) FROM agents WHERE host='$host' AND agent_type='Open vSwitch agent' AND heartbeat_timestamp > UTC_TIMESTAMP() - INTERVAL 60 SECOND") -ge 1 ]]
	}
	wait_for "$na" 90 agent_up
	wait_for "$nc" 90 compute_up
	# Map the new compute node into cell1 now rather than at the scheduler's next scan.
	nova-manage --config-file "$AIO_ETC/nova/nova.conf" cell_v2 discover_hosts >>"$AIO_LOG/nova-manage.log" 2>&1 ||
		die "nova-manage cell_v2 discover_hosts" nova-manage
	say "fake compute $host is up (config $conf)"
}

stop() {
	local n
	for n in "$nc" "$na"; do
		if owned_pid "$n" >/dev/null; then
			say "stopping $n"
			stop_owned "$n" 10
		fi
	done
	ovs-vsctl --if-exists del-br "$br_int" -- --if-exists del-br "$br_phys" 2>/dev/null || true
	say "fake compute $host stopped"
}

case $action in
start) start ;;
stop) stop ;;
status)
	for n in "$nc" "$na"; do
		if p=$(owned_pid "$n"); then echo "$n running (pid $p)"; else echo "$n stopped"; fi
	done
	;;
*) usage ;;
esac
