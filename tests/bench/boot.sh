#!/usr/bin/env bash
# boot.sh — issue 5's figures, measured in one run against the real all-in-one, each beside
# its baseline:
#   POST /servers → ACTIVE on a cached image: our agent (a real VM-like container, network
#     plugged, neutron's network-vif-plugged awaited) vs the Python nova-compute with nova's
#     FakeDriver (tests/aio/fake-compute.sh: a driver that does nothing), both in a zone of
#     their own, BENCH_N (20) sequential boots on ours, BENCH_N_PY (BENCH_N) on the baseline:
#     p50 / p99 / max. The request goes to nova-api with curl and the server is polled every
#     0.1 s (`openstack server create --wait` polls every 5 s, too coarse to compare);
#   build RPC → ACTIVE: build_and_run_instance received by the agent → its "built instance"
#     log line, p50 / p99 (the agent's own figure, nova-api and the scheduler excluded);
#   ACTIVE → SSH: from ACTIVE to the first successful ssh from a netns on the VLAN;
#   BENCH_CONCURRENT (20) concurrent boots: all ACTIVE? wall time;
#   memory per idle instance: the memory cgroup usage of the instance and its sandbox
#     (docker stats), mean, 60 s after the concurrent boots settled, and how many such
#     instances this host's RAM (minus the agent's and the control plane's) would hold.
# Figures only: nothing here passes or fails on speed.
#
# usage: tests/bench/boot.sh    (root; tests/aio/up.sh and tests/demo.sh done: image, network, keypair)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.bash
. "$ROOT/tests/e2e/lib.bash"

N=${BENCH_N:-20}
N_PY=${BENCH_N_PY:-$N}
C=${BENCH_CONCURRENT:-20}
PY_HOST=nca-bench-boot-py
IMAGE=${NCA_E2E_IMAGE:-nca-debian12-small}
NET=${NCA_E2E_NET:-nca-demo-net}
DEMO_DIR=${DEMO_DIR:-/var/lib/nca-demo}
# A machine on the instances' VLAN, on the bench host's own physical bridge.
PEER=nca-bpeer PEER_IP=192.0.2.249
FLAVOR=nca-bench-boot
die() { echo "boot.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root"
osc image show "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE missing: run tests/demo.sh first"
osc network show "$NET" >/dev/null 2>&1 || die "network $NET missing: run tests/demo.sh first"
osc port show "nca-reserved-192.0.2.249" >/dev/null 2>&1 || die "the peer's address is not reserved on $NET: run tests/demo.sh again"
SEGMENT=$(osc network show "$NET" -f value -c provider:segmentation_id)

e2e_host nca-bench-boot
e2e_write_overlay "report_interval = 10"
e2e_build_agent

servers() { osc server list --name "^nca-bench-b-" -f value -c ID; }
cleanup() {
	local id
	for id in $(servers); do osc server delete "$id" >/dev/null 2>&1 || true; done
	for _ in $(seq 90); do [[ -z $(servers) ]] && break; sleep 2; done
	e2e_zone_remove
	local save=$E2E_HOST
	E2E_HOST=$PY_HOST e2e_zone_remove
	E2E_HOST=$save
	osc flavor delete "$FLAVOR" >/dev/null 2>&1 || true
	"$ROOT/tests/aio/fake-compute.sh" stop "$PY_HOST" >/dev/null 2>&1 || true
	ip netns del "$PEER" 2>/dev/null || true
	ip link del "$PEER-h" 2>/dev/null || true
	for id in $(osc compute service list --host "$PY_HOST" --service nova-compute -f value -c ID 2>/dev/null); do
		osc compute service delete "$id" >/dev/null 2>&1 || true
	done
	for id in $(osc network agent list --host "$PY_HOST" -f value -c ID 2>/dev/null); do
		osc network agent delete "$id" >/dev/null 2>&1 || true
	done
}
e2e_guard cleanup
cleanup
e2e_cleanup_host
mkdir -p "$E2E_WORK/state"

e2e_host_up
e2e_zone_create
ip netns del "$PEER" 2>/dev/null || true
ip link del "$PEER-h" 2>/dev/null || true
ip netns add "$PEER"
ip link add "$PEER-h" type veth peer name "$PEER-g"
ip link set "$PEER-g" netns "$PEER"
ip link set "$PEER-h" up
ovs-vsctl --may-exist add-port "$E2E_BR_PHYS" "$PEER-h" tag="$SEGMENT"
ip -n "$PEER" addr add "$PEER_IP/24" dev "$PEER-g"
ip -n "$PEER" link set "$PEER-g" up
ip netns exec "$PEER" ethtool -K "$PEER-g" tx off >/dev/null
ethtool -K "$PEER-h" tx off >/dev/null
"$ROOT/tests/aio/fake-compute.sh" start "$PY_HOST" >&2
nova_manage cell_v2 discover_hosts >/dev/null
save=$E2E_HOST
E2E_HOST=$PY_HOST e2e_zone_create
E2E_HOST=$save
osc flavor create --vcpus 1 --ram 128 --disk 1 "$FLAVOR" >/dev/null
osc quota set --instances 200 --cores 400 --ram 409600 "${OS_PROJECT_NAME:-admin}" >/dev/null

# percentiles FILE: "p50 p99 max" of the numbers in FILE (nearest rank).
percentiles() {
	sort -n "$1" | awk '{a[NR]=$1} END {
		if (NR == 0) { print "n/a n/a n/a"; exit }
		p50 = a[int((NR * 50 + 99) / 100)]; p99 = a[int((NR * 99 + 99) / 100)]
		printf "%.2f %.2f %.2f\n", p50, p99, a[NR] }'
}
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f\n", a-b}'; }

# nova-api, called directly: one token and the ids resolved once, so a boot's figure holds
# nova's time and not the openstack client's start-up.
NOVA_URL=$(osc endpoint list --service compute --interface public -f value -c URL | head -n1)
NOVA_TOKEN=$(osc token issue -f value -c id)
IMAGE_ID=$(osc image show "$IMAGE" -f value -c id)
FLAVOR_ID=$(osc flavor show "$FLAVOR" -f value -c id)
NET_ID=$(osc network show "$NET" -f value -c id)
nova() { # METHOD PATH [BODY]
	curl -sS --fail-with-body -X "$1" -H "X-Auth-Token: $NOVA_TOKEN" -H 'Content-Type: application/json' \
		-H 'OpenStack-API-Version: compute 2.1' ${3:+--data "$3"} "$NOVA_URL$2"
}

# boot_timed ZONE NAME: POST /servers, then poll every 0.1 s; prints the seconds to ACTIVE
# and fails (after printing the fault) on ERROR or after 300 s.
boot_timed() {
	local zone=$1 name=$2 t0 id st body
	body=$(jq -nc --arg n "$name" --arg i "$IMAGE_ID" --arg f "$FLAVOR_ID" --arg net "$NET_ID" --arg z "$zone" \
		'{server: {name: $n, imageRef: $i, flavorRef: $f, networks: [{uuid: $net}], availability_zone: $z, key_name: "nca-demo"}}')
	t0=$(now)
	id=$(nova POST /servers "$body" | jq -r .server.id) || return 1
	for _ in $(seq 3000); do
		st=$(nova GET "/servers/$id" | jq -r .server.status) || st=
		case $st in
		ACTIVE) since "$t0"; return 0 ;;
		ERROR) nova GET "/servers/$id" | jq -c .server.fault >&2; return 1 ;;
		esac
		sleep 0.1
	done
	return 1
}

# boots ZONE TAG FILE COUNT: sequential boots, seconds each into FILE.
boots() {
	local zone=$1 tag=$2 out=$3 count=$4 i t0 name secs
	: >"$out"
	for i in $(seq "$count"); do
		name=nca-bench-b-$tag-$i
		secs=$(boot_timed "$zone" "$name") || { echo "boot $name failed" >&2; osc server delete --wait "$name" >/dev/null 2>&1; continue; }
		echo "$secs" >>"$out"
		if [[ $tag == go ]]; then
			# ACTIVE → SSH over the VLAN.
			addr=$(osc server show "$name" -f json | jq -r '.addresses | to_entries[0].value[0]')
			t0=$(now)
			for _ in $(seq 100); do
				ip netns exec "$PEER" ssh -i "$DEMO_DIR/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
					-o ConnectTimeout=1 -o LogLevel=ERROR "root@$addr" true 2>/dev/null && break
				sleep 0.1
			done
			since "$t0" >>"$E2E_WORK/ssh.txt"
		fi
		osc server delete --wait "$name" >/dev/null
	done
}

: >"$E2E_WORK/ssh.txt"
e2e_log "warm-up boot on each host (image conversion and caches)"
osc server create --image "$IMAGE" --flavor "$FLAVOR" --network "$NET" --availability-zone "$E2E_HOST" --wait nca-bench-b-warm-go >/dev/null
osc server create --image "$IMAGE" --flavor "$FLAVOR" --network "$NET" --availability-zone "$PY_HOST" --wait nca-bench-b-warm-py >/dev/null
osc server delete --wait nca-bench-b-warm-go nca-bench-b-warm-py >/dev/null

e2e_log "$N_PY sequential boots on the Python nova-compute with FakeDriver ($PY_HOST)"
boots "$PY_HOST" py "$E2E_WORK/py.txt" "$N_PY"
e2e_log "$N sequential boots on nova-container-agent ($E2E_HOST)"
mark=$(wc -l <"$E2E_AGENT_LOG")
boots "$E2E_HOST" go "$E2E_WORK/go.txt" "$N"
tail -n +"$mark" "$E2E_AGENT_LOG" | grep 'msg="built instance"' | sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' >"$E2E_WORK/rpc.txt"

e2e_log "$C concurrent boots on nova-container-agent"
t0=$(now)
osc server create --image "$IMAGE" --flavor "$FLAVOR" --network "$NET" --availability-zone "$E2E_HOST" \
	--min "$C" --max "$C" nca-bench-b-conc >/dev/null
settled() { [[ $(osc server list --name '^nca-bench-b-conc' -f json | jq '[.[] | select(.Status == "BUILD")] | length') == 0 ]]; }
wait_until 900 settled || true
conc_wall=$(since "$t0")
conc_active=$(osc server list --name '^nca-bench-b-conc' -f json | jq '[.[] | select(.Status == "ACTIVE")] | length')

e2e_log "idle memory of the $conc_active instances, 60 s after they settled"
sleep 60
mem_total=0 mem_n=0
while read -r name usage; do
	mib=$(awk -v u="$usage" 'BEGIN{ v=u+0; if (u ~ /GiB/) v*=1024; else if (u ~ /KiB/) v/=1024; else if (u ~ /B$/ && u !~ /[KMG]iB/) v/=1048576; printf "%.1f", v }')
	mem_total=$(awk -v a="$mem_total" -v b="$mib" 'BEGIN{print a+b}')
	[[ $name == *-sandbox ]] || mem_n=$((mem_n + 1))
done < <(docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' | grep "^nca-e2e-$E2E_HOST-" | awk '{print $1, $2}')
per=$(awk -v t="$mem_total" -v n="$mem_n" 'BEGIN{ if (n) printf "%.1f", t/n; else print "n/a" }')
agent_rss=$(ps -o rss= -p "$E2E_AGENT_PID" | awk '{printf "%.0f", $1/1024}')
avail=$(awk '/MemAvailable/{printf "%.0f", $2/1024}' /proc/meminfo)
fit=$(awk -v a="$avail" -v t="$mem_total" -v p="$per" 'BEGIN{ if (p+0 > 0) printf "%d", (a + t) / p; else print "n/a" }')

read -r py50 py99 pymax < <(percentiles "$E2E_WORK/py.txt")
read -r go50 go99 gomax < <(percentiles "$E2E_WORK/go.txt")
read -r r50 r99 rmax < <(percentiles "$E2E_WORK/rpc.txt")
read -r s50 s99 smax < <(percentiles "$E2E_WORK/ssh.txt")
echo
echo "== boot figures (this run; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-58s %8s %8s %8s %6s\n' "" p50 p99 max n
printf '%-58s %8s %8s %8s %6s\n' "POST /servers → ACTIVE, Python nova-compute + FakeDriver (s)" "$py50" "$py99" "$pymax" "$(wc -l <"$E2E_WORK/py.txt")"
printf '%-58s %8s %8s %8s %6s\n' "POST /servers → ACTIVE, nova-container-agent (s)" "$go50" "$go99" "$gomax" "$(wc -l <"$E2E_WORK/go.txt")"
printf '%-58s %8s\n' "  ratio agent / FakeDriver at p50" "$(awk -v a="$go50" -v b="$py50" 'BEGIN{ if (b+0 > 0) printf "%.2fx", a/b; else print "n/a" }')"
printf '%-58s %8s %8s %8s %6s\n' "build RPC → ACTIVE inside the agent (s)" "$r50" "$r99" "$rmax" "$(wc -l <"$E2E_WORK/rpc.txt")"
printf '%-58s %8s %8s %8s %6s\n' "ACTIVE → first SSH over the VLAN (s)" "$s50" "$s99" "$smax" "$(wc -l <"$E2E_WORK/ssh.txt")"
echo "$C concurrent boots: $conc_active ACTIVE, wall ${conc_wall} s"
echo "idle memory per instance (container + sandbox, docker stats): ${per} MiB over $mem_n instances; agent RSS ${agent_rss} MiB"
echo "instances of this size that fit this host's RAM now (MemAvailable ${avail} MiB + theirs): ${fit}"
