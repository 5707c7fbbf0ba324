#!/usr/bin/env bash
# smoke.sh [HOST] — proves the all-in-one works end to end with the reference
# compute: starts fake-compute HOST (real nova-compute + FakeDriver, real neutron
# OVS agent), checks the service/agent/hypervisor lists, boots a server on a VLAN
# provider network (physnet1, segment 101) and waits for ACTIVE with an ovs port
# binding, compares oslo_probe's answers with testdata/oslo_probe.expected.json,
# then deletes everything it created and stops the fake compute.
# Objects are named nca-smoke-* so a concurrent user's objects are never touched.
set -euo pipefail
_t0=$(date +%s.%N)
cd "$(dirname "$0")"
# shellcheck source=tests/aio/lib.sh
. ./lib.sh
host=${1:-fc-smoke}
# shellcheck source=/dev/null
. "$NCA_AIO_DIR/admin-openrc"
os() { openstack "$@"; }
tag=nca-smoke-$$
img=$(mktemp)
cleanup() {
	set +e
	# Each openstack CLI call costs seconds of Python start-up: independent
	# deletions run concurrently.
	os server delete --wait "$tag-srv" >/dev/null 2>&1
	{ os subnet delete "$tag-sub" && os network delete "$tag-net"; } >/dev/null 2>&1 &
	os image delete "$tag-img" >/dev/null 2>&1 &
	os flavor delete "$tag-flv" >/dev/null 2>&1 &
	./fake-compute.sh stop "$host" >/dev/null 2>&1
	# Leave no dead compute service / network agent behind in teammates' lists.
	local id
	for id in $(os compute service list --host "$host" -f value -c ID 2>/dev/null); do
		os compute service delete "$id" >/dev/null 2>&1 &
	done
	for id in $(os network agent list --host "$host" -f value -c ID 2>/dev/null); do
		os network agent delete "$id" >/dev/null 2>&1 &
	done
	wait
	rm -f "$img"
}
trap cleanup EXIT

./fake-compute.sh start "$host"
jq_has() { # JSON-ARRAY-FILTER: succeeds when the jq filter yields true
	jq -e "$1" >/dev/null
}
os compute service list -f json | jq_has "any(.[]; .Host==\"$host\" and .Binary==\"nova-compute\" and .State==\"up\")" ||
	die "nova-compute $host not up in compute service list"
os network agent list -f json | jq_has "any(.[]; .Host==\"$host\" and .Alive==true)" ||
	die "no alive network agent for $host"
os hypervisor list -f json | jq_has "any(.[]; .\"Hypervisor Hostname\"==\"$host\" and .State==\"up\")" ||
	die "hypervisor $host not listed up"
say "smoke: $host is up in compute service, network agent and hypervisor lists"

# Segment 101 may be taken by a teammate's network: take the first free VLAN.
vlan=101
while [[ -n $(os network list --provider-network-type vlan --provider-segment "$vlan" -f value -c ID) ]]; do
	((vlan < 199)) || die "no free VLAN on physnet1"
	vlan=$((vlan + 1))
done
head -c 1048576 /dev/urandom >"$img"
os network create --provider-network-type vlan --provider-physical-network physnet1 \
	--provider-segment "$vlan" "$tag-net" -f value -c id >/dev/null
os subnet create --network "$tag-net" --subnet-range 10.199.0.0/24 --no-dhcp "$tag-sub" -f value -c id >/dev/null
os image create --disk-format raw --container-format bare --file "$img" "$tag-img" -f value -c id >/dev/null
os flavor create --vcpus 1 --ram 256 --disk 1 "$tag-flv" -f value -c id >/dev/null
say "smoke: booting $tag-srv on $host (VLAN $vlan)"
t=$SECONDS
out=$(os server create --image "$tag-img" --flavor "$tag-flv" --network "$tag-net" \
	--availability-zone "nova:$host" --wait "$tag-srv" -f json) || die "server create failed" "fake-compute-$host"
status=$(jq -r .status <<<"$out")
[[ $status == ACTIVE ]] || die "server status $status" "fake-compute-$host"
port=$(os port list --server "$tag-srv" -f value -c ID)
vif=$(os port show "$port" -f json | jq -r .binding_vif_type)
[[ $vif == ovs ]] || die "port $port vif_type $vif, want ovs" neutron-server
say "smoke: $tag-srv ACTIVE in $((SECONDS - t)) s, port $port bound vif_type=$vif"

if ! diff -u testdata/oslo_probe.expected.json <($PY oslo_probe.py "$host"); then
	die "oslo_probe answers of $host differ from testdata/oslo_probe.expected.json"
fi
say "smoke: oslo_probe answers match testdata/oslo_probe.expected.json"
cleanup
trap - EXIT
say "smoke: passed"
