#!/usr/bin/env bash
# 10-compute-host.sh — issue 2's proof against the real all-in-one: the agent joins
# OpenStack Zed as an ordinary compute host.
#
#   1. agent started → nova-compute service on its host, State up; discover_hosts maps it;
#      `hypervisor show` reports the host's vcpus, memory and hypervisor_type docker;
#   2. the resource provider (uuid = compute node uuid, name = host) carries VCPU /
#      MEMORY_MB / DISK_GB with the configured ratios and reserved amounts, and the
#      traits COMPUTE_NODE and COMPUTE_IMAGE_TYPE_QCOW2;
#   3. `compute service set --disable` → COMPUTE_STATUS_DISABLED within one update
#      cycle (60 s); --enable removes it;
#   4. agent restart keeps the compute node and the provider uuid;
#   5. RabbitMQ restarted (stop_app/start_app) → heartbeats resume, no agent restart;
#   6. a real oslo.messaging client (tests/aio/oslo_probe.py) gets the answers a real
#      nova-compute gives (tests/aio/testdata/oslo_probe.expected.json);
#   7. agent stopped → service down after service_down_time (60 s);
#   then the service (and with it compute node, host mapping, provider) is deleted.
#
# The agent runs as its own host (NCA_E2E_HOST, default nca-e2e-10) with a private
# state_path, bridges and container prefix, so an agent running as nca-1 is untouched.
# usage: tests/e2e/10-compute-host.sh   (root; all-in-one up; NCA_E2E_SKIP_RABBIT=1
# skips the RabbitMQ restart, which briefly disconnects every RabbitMQ client)
set -euo pipefail
# shellcheck source=tests/e2e/lib.bash
. "$(dirname "$0")/lib.bash"

[[ $(id -u) == 0 ]] || { echo "10-compute-host: must run as root" >&2; exit 1; }
for c in openstack nova-manage jq mariadb rabbitmqctl ovs-vsctl; do
	command -v "$c" >/dev/null || { echo "10-compute-host: missing $c (run tests/aio/up.sh)" >&2; exit 1; }
done

e2e_host "${NCA_E2E_HOST:-nca-e2e-10}"
# Explicit ratios and reserved amounts, all different from nova's defaults, so the
# inventory check proves they are read rather than defaulted.
CPU_RATIO=3.0 RAM_RATIO=1.25 DISK_RATIO=1.5
RES_MEM=1024 RES_DISK_MB=2048 RES_CPUS=1
e2e_write_overlay "cpu_allocation_ratio = $CPU_RATIO
ram_allocation_ratio = $RAM_RATIO
disk_allocation_ratio = $DISK_RATIO
reserved_host_memory_mb = $RES_MEM
reserved_host_disk_mb = $RES_DISK_MB
reserved_host_cpus = $RES_CPUS
report_interval = 10
service_down_time = 60"
e2e_build_agent

finish() {
	local rc=$?
	# A command failing outside a check (set -e) ends the suite early: that is a failure too.
	((rc == 0)) || fail "suite ran to its end" "aborted with status $rc near line ${E2E_ERR_LINE:-?}"
	e2e_agent_stop || true
	e2e_log "cleanup: deleting the $E2E_HOST service, compute node, provider, neutron agent, bridges"
	e2e_cleanup_host
	if [[ -n $(osc compute service list --host "$E2E_HOST" -f value -c ID 2>/dev/null) ]]; then
		fail "cleanup: no service left for $E2E_HOST" "still listed"
	else
		pass "cleanup: no service left for $E2E_HOST"
	fi
	e2e_finish || exit 1
	exit "$rc"
}
trap 'E2E_ERR_LINE=$LINENO' ERR
trap finish EXIT

e2e_log "leftovers of an earlier run: removing"
e2e_cleanup_host
mkdir -p "$E2E_WORK/state"

# ------------------------------------------------------------------ 1. registration
e2e_agent_start
is_up() { [[ $(svc_state) == "up enabled" ]]; }
if wait_until 90 is_up; then
	pass "service list: nova-compute on $E2E_HOST is up, enabled" "after ${WAITED}s"
else
	fail "service list: nova-compute on $E2E_HOST is up, enabled" "got '$(svc_state)' after ${WAITED}s; agent log tail: $(tail -n 5 "$E2E_AGENT_LOG")"
	exit 1
fi
svc=$(svc_json)
expect_eq "service: binary" "$(jq -r .Binary <<<"$svc")" nova-compute
expect_eq "service: zone" "$(jq -r .Zone <<<"$svc")" nova

# The scheduler maps new hosts every 10 s too (discover_hosts_in_cells_interval);
# run it ourselves as the issue asks and look at the mapping either way.
check "nova-manage cell_v2 discover_hosts" nova_manage cell_v2 discover_hosts
mapped() { nova_manage cell_v2 list_hosts 2>/dev/null | grep -Eq "\| *cell1 *\| *[0-9a-f-]{36} *\| *$E2E_HOST *\|"; }
if wait_until 30 mapped; then
	pass "cell_v2 list_hosts: $E2E_HOST mapped to cell1"
else
	fail "cell_v2 list_hosts: $E2E_HOST mapped to cell1" "$(nova_manage cell_v2 list_hosts 2>&1 | tail -n 8)"
fi

# Microversion 2.53: the hypervisor id is the compute node's uuid (2.88 drops the
# resource fields, so stay below it).
hyp=$(osc --os-compute-api-version 2.53 hypervisor show "$E2E_HOST" -f json) || {
	fail "hypervisor show $E2E_HOST" "no hypervisor"
	exit 1
}
CN_UUID=$(jq -r .id <<<"$hyp")
NPROC=$(nproc)
MEM_MB=$(($(awk '/^MemTotal:/{print $2}' /proc/meminfo) / 1024))
DISK_GB=$(($(stat -f -c '%b * %S' "$E2E_WORK/state/instances") / 1073741824))
expect_eq "hypervisor: hypervisor_type" "$(jq -r .hypervisor_type <<<"$hyp")" docker
expect_eq "hypervisor: hypervisor_hostname" "$(jq -r .hypervisor_hostname <<<"$hyp")" "$E2E_HOST"
expect_eq "hypervisor: vcpus = nproc" "$(jq -r .vcpus <<<"$hyp")" "$NPROC"
mem=$(jq -r .memory_mb <<<"$hyp")
if ((mem > 0 && (mem - MEM_MB) * (mem - MEM_MB) <= (MEM_MB / 100) ** 2)); then
	pass "hypervisor: memory_mb ≈ MemTotal" "$mem vs $MEM_MB"
else
	fail "hypervisor: memory_mb ≈ MemTotal" "got $mem, MemTotal $MEM_MB MiB"
fi
expect_eq "hypervisor: local_gb = size of instances_path's filesystem" "$(jq -r .local_gb <<<"$hyp")" "$DISK_GB"
expect_eq "hypervisor: memory_mb_used = reserved_host_memory_mb (no instances)" "$(jq -r .memory_mb_used <<<"$hyp")" "$RES_MEM"
expect_eq "hypervisor: state up, status enabled" "$(jq -r '"\(.state) \(.status)"' <<<"$hyp")" "up enabled"
if [[ $CN_UUID =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; then
	pass "hypervisor: id is the compute node uuid" "$CN_UUID"
else
	fail "hypervisor: id is the compute node uuid" "got '$CN_UUID'"
	exit 1
fi

# ------------------------------------------------------------------ 2. placement
rp=$(osc resource provider show "$CN_UUID" -f json) || true
expect_eq "resource provider: uuid = compute node uuid, name = host" \
	"$(jq -r '"\(.uuid) \(.name)"' <<<"${rp:-{\}}")" "$CN_UUID $E2E_HOST"
inv=$(osc resource provider inventory list "$CN_UUID" -f json) || inv='[]'
inv_row() { # CLASS → "total reserved allocation_ratio min_unit max_unit step_size"
	jq -r --arg rc "$1" '.[] | select(.resource_class == $rc) |
		"\(.total) \(.reserved) \(.allocation_ratio) \(.min_unit) \(.max_unit) \(.step_size)"' <<<"$inv"
}
res_disk_gb=$(((RES_DISK_MB + 1023) / 1024))
# jq prints JSON numbers in shortest form (3.0 → 3): compare the ratios the same way.
g() { printf '%g' "$1"; }
expect_eq "inventory VCPU: total reserved ratio min max step" "$(inv_row VCPU)" "$NPROC $RES_CPUS $(g $CPU_RATIO) 1 $NPROC 1"
expect_eq "inventory MEMORY_MB: total reserved ratio min max step" "$(inv_row MEMORY_MB)" "$mem $RES_MEM $(g $RAM_RATIO) 1 $mem 1"
expect_eq "inventory DISK_GB: total reserved ratio min max step" "$(inv_row DISK_GB)" "$DISK_GB $res_disk_gb $(g $DISK_RATIO) 1 $DISK_GB 1"
expect_eq "inventory: exactly VCPU, MEMORY_MB, DISK_GB" "$(jq -r '[.[].resource_class] | sort | join(",")' <<<"$inv")" "DISK_GB,MEMORY_MB,VCPU"

traits() { osc --os-placement-api-version 1.6 resource provider trait list "$CN_UUID" -f value -c name | sort; }
tr=$(traits)
for t in COMPUTE_NODE COMPUTE_IMAGE_TYPE_QCOW2; do
	if grep -qx "$t" <<<"$tr"; then pass "trait $t"; else fail "trait $t" "traits: $(echo $tr)"; fi
done
if grep -qx COMPUTE_STATUS_DISABLED <<<"$tr"; then
	fail "no COMPUTE_STATUS_DISABLED while enabled" "traits: $(echo $tr)"
else
	pass "no COMPUTE_STATUS_DISABLED while enabled"
fi

# ------------------------------------------------------------------ 3. disable / enable
# Two paths, as in nova:
#  - microversion 2.1 (PUT /os-services/disable): nova-api only flips the service record;
#    the compute notices in its next update_available_resource (every 60 s), like nova's
#    _sync_compute_service_disabled_trait: allow one cycle plus a poll;
#  - the client's negotiated microversion (>= 2.53, PUT /os-services/{uuid}): nova-api
#    also calls the compute's set_host_enabled over RPC, which syncs the trait at once.
# A failed trait listing counts as "not yet" either way.
has_disabled() { local t; t=$(traits) && grep -qx COMPUTE_STATUS_DISABLED <<<"$t"; }
no_disabled() { local t; t=$(traits) && ! grep -qx COMPUTE_STATUS_DISABLED <<<"$t"; }
toggle() { # LABEL MICROVERSION_ARGS...
	local label=$1
	shift
	check "service set --disable ($label)" osc "$@" compute service set --disable --disable-reason "nca e2e" "$E2E_HOST" nova-compute
	expect_eq "service set --disable ($label): service status" "$(svc_json | jq -r .Status)" disabled
	if wait_until 75 has_disabled; then
		pass "disable ($label) → COMPUTE_STATUS_DISABLED on the provider" "after ${WAITED}s"
	else
		fail "disable ($label) → COMPUTE_STATUS_DISABLED on the provider" "not there after ${WAITED}s: $(echo $(traits))"
	fi
	check "service set --enable ($label)" osc "$@" compute service set --enable "$E2E_HOST" nova-compute
	expect_eq "service set --enable ($label): service status" "$(svc_json | jq -r .Status)" enabled
	if wait_until 75 no_disabled; then
		pass "enable ($label) → COMPUTE_STATUS_DISABLED removed" "after ${WAITED}s"
	else
		fail "enable ($label) → COMPUTE_STATUS_DISABLED removed" "still there after ${WAITED}s"
	fi
}
toggle "API 2.1, periodic sync" --os-compute-api-version 2.1
toggle "API >= 2.53, set_host_enabled RPC"

# ------------------------------------------------------------------ 4. restart keeps identity
count0=$(svc_db | awk '{print $1}')
e2e_agent_stop
expect_eq "agent: SIGTERM → clean exit" "$E2E_AGENT_RC" 0
e2e_agent_start
reported_since() { [[ $(svc_db | awk '{print $1}') -gt $1 ]]; }
if wait_until 60 reported_since "$count0"; then
	pass "restarted agent reports again" "report_count $count0 → $(svc_db | awk '{print $1}') after ${WAITED}s"
else
	fail "restarted agent reports again" "report_count still $(svc_db | awk '{print $1}') after ${WAITED}s"
fi
hyp2=$(osc --os-compute-api-version 2.53 hypervisor list -f json | jq -c --arg h "$E2E_HOST" '[.[] | select(."Hypervisor Hostname" == $h)]')
expect_eq "restart: one compute node, same uuid" "$(jq -r '[.[].ID] | join(",")' <<<"$hyp2")" "$CN_UUID"
expect_eq "restart: one provider named $E2E_HOST, same uuid" \
	"$(osc resource provider list --name "$E2E_HOST" -f value -c uuid | paste -sd,)" "$CN_UUID"
expect_eq "restart: compute nodes in nova's DB for $E2E_HOST" \
	"$(mariadb -N nova -e "SELECT COUNT(*), MIN(uuid) FROM compute_nodes WHERE host='$E2E_HOST' AND deleted=0")" "1	$CN_UUID"

# ------------------------------------------------------------------ 5. RabbitMQ restart
if [[ ${NCA_E2E_SKIP_RABBIT:-0} == 1 ]]; then
	echo "SKIP RabbitMQ restart (NCA_E2E_SKIP_RABBIT=1): not counted as a pass"
else
	rc_before=$(svc_db | awk '{print $1}')
	pid_before=$E2E_AGENT_PID
	e2e_log "restarting RabbitMQ (rabbitmqctl stop_app; start_app); report_count $rc_before"
	rabbitmqctl -q stop_app >/dev/null
	sleep 3
	rabbitmqctl -q start_app >/dev/null
	rabbitmqctl -q await_startup >/dev/null 2>&1 || true
	e2e_log "RabbitMQ is back"
	# Heartbeats every 10 s; the reconnect backoff is a few seconds: 60 s is generous.
	resumed() {
		local n
		n=$(svc_db | awk '{print $1}')
		[[ $n -gt $((rc_before + 1)) ]]
	}
	if wait_until 90 resumed; then
		pass "RabbitMQ restart: heartbeats resume" "report_count $rc_before → $(svc_db | awk '{print $1}') ${WAITED}s after start_app"
	else
		fail "RabbitMQ restart: heartbeats resume" "report_count $(svc_db | awk '{print $1}') (was $rc_before) after ${WAITED}s"
	fi
	if e2e_agent_alive && [[ $E2E_AGENT_PID == "$pid_before" ]]; then
		pass "RabbitMQ restart: same agent process" "pid $pid_before"
	else
		fail "RabbitMQ restart: same agent process" "agent pid $pid_before is gone"
	fi
	expect_eq "RabbitMQ restart: service list State/Status" "$(svc_state)" "up enabled"
	qup() { rabbitmqctl -q list_queues name consumers | grep -Eq "^compute\.$E2E_HOST[[:space:]]+[1-9]"; }
	if wait_until 30 qup; then
		pass "RabbitMQ restart: compute.$E2E_HOST has a consumer again"
	else
		fail "RabbitMQ restart: compute.$E2E_HOST has a consumer again" "$(rabbitmqctl -q list_queues name consumers | grep "compute\.$E2E_HOST" || echo 'no queue')"
	fi
fi

# ------------------------------------------------------------------ 6. oslo.messaging probe
probe=$E2E_WORK/oslo_probe.json
if /usr/bin/python3 "$E2E_ROOT/tests/aio/oslo_probe.py" --timeout 20 "$E2E_HOST" >"$probe" 2>"$E2E_WORK/oslo_probe.err"; then
	pass "oslo_probe.py: every probe answered by the server"
else
	fail "oslo_probe.py: every probe answered by the server" "$(tail -n 5 "$E2E_WORK/oslo_probe.err")"
fi
# Compare probe by probe (the probe already writes the host as <HOST>; normalise any
# remaining occurrence of our host name anyway).
while IFS=$'\t' read -r st name detail; do
	if [[ $st == PASS ]]; then pass "oslo probe $name = real nova-compute's" "$detail"; else fail "oslo probe $name = real nova-compute's" "$detail"; fi
done < <(/usr/bin/python3 "$E2E_ROOT/tests/e2e/oslo_probe_diff.py" "$probe" "$E2E_ROOT/tests/aio/testdata/oslo_probe.expected.json" "$E2E_HOST")

# ------------------------------------------------------------------ 7. stopped → down
e2e_agent_stop
expect_eq "agent: SIGTERM → clean exit (second run)" "$E2E_AGENT_RC" 0
t_stop=$SECONDS
last_seen() { mariadb -N nova -e "SELECT TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) FROM services WHERE host='$E2E_HOST' AND \`binary\`='nova-compute' AND deleted=0"; }
e2e_log "agent stopped; its last heartbeat was $(last_seen) s ago"
# nova-api says down once now - updated_at > service_down_time (60 s). Each API call
# takes seconds here, so the observed delay is 60 s plus one poll at most.
is_down() { [[ $(svc_state) == "down enabled" ]]; }
if wait_until 120 is_down; then
	since=$(last_seen)
	# TIMESTAMPDIFF truncates to whole seconds: nova's "more than 60 s" can read as 60 here.
	if ((since >= 60)); then
		pass "agent stopped → service down after service_down_time" "$((SECONDS - t_stop))s after stop, ${since}s after its last heartbeat"
	else
		fail "agent stopped → service down after service_down_time" "down only ${since}s after its last heartbeat"
	fi
else
	fail "agent stopped → service down after service_down_time" "state '$(svc_state)' $((SECONDS - t_stop))s after stop; last heartbeat $(last_seen)s ago"
fi
