#!/usr/bin/env bash
# agent.sh — issue 2's figures, each beside its baseline, measured in the same run against
# the real all-in-one:
#   idle RSS     our agent vs the Python nova-compute (FakeDriver, tests/aio/fake-compute.sh)
#                and its neutron-openvswitch-agent, each 60 s after start, `ps -o rss`;
#   conductor    p50/p99 of Service.get_by_host_and_binary round trips through the real
#                nova-conductor: agent/conductor over agent/rpc (tests/bench/agentrpc) vs
#                nova's own objects + ConductorAPI under eventlet, and a plain
#                oslo.messaging RPCClient (tests/bench/agent_conductor_baseline.py);
#   dispatch     baseapi ping calls/s answered by compute.<host> (the same Go client, c in
#                flight), our agent vs the Python nova-compute; plus casts/s taken off the
#                queue.
# Our agent and the Python compute run as their own hosts (nca-bench-go, nca-bench-py) and
# are removed from the cloud at the end. Figures only: nothing here passes or fails on speed.
#
# usage: tests/bench/agent.sh    (root; tests/aio/up.sh done)
#   BENCH_N_CONDUCTOR (200), BENCH_ROUNDS (4), BENCH_N_FLOOD (5000), BENCH_INFLIGHT (32),
#   BENCH_IDLE_S (60)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=tests/e2e/lib.bash
. "$ROOT/tests/e2e/lib.bash"

N_COND=${BENCH_N_CONDUCTOR:-200}
N_FLOOD=${BENCH_N_FLOOD:-5000}
INFLIGHT=${BENCH_INFLIGHT:-32}
IDLE_S=${BENCH_IDLE_S:-60}
ROUNDS=${BENCH_ROUNDS:-4}
PY_HOST=nca-bench-py
AIO_RUN=${AIO_RUN:-/run/nca-aio}

die() { echo "agent.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root"

e2e_host nca-bench-go
e2e_write_overlay "report_interval = 10"
e2e_build_agent
(cd "$ROOT" && go build -o "$E2E_WORK/agentrpc" ./tests/bench/agentrpc) || die "go build ./tests/bench/agentrpc"
RPCB=$E2E_WORK/agentrpc

cleanup() {
	e2e_agent_stop || true
	"$ROOT/tests/aio/fake-compute.sh" stop "$PY_HOST" >/dev/null 2>&1 || true
	e2e_cleanup_host
	local id
	for id in $(osc compute service list --host "$PY_HOST" --service nova-compute -f value -c ID 2>/dev/null); do
		osc compute service delete "$id" >/dev/null || true
	done
	for id in $(osc network agent list --host "$PY_HOST" -f value -c ID 2>/dev/null); do
		osc network agent delete "$id" >/dev/null || true
	done
}
trap cleanup EXIT
cleanup

# rss_kb PID → resident set of PID in KiB; tree_rss_kb PID → PID plus its descendants.
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
tree_rss_kb() {
	local pids
	pids=$(ps -eo pid=,ppid= | awk -v r="$1" '{p[$1]=$2} END {for (x in p) {y=x; while (y && y!=r) y=p[y]; if (y==r) print x}}')
	# shellcheck disable=SC2086
	ps -o rss= -p "$(echo $pids | tr ' ' ,)" | awk '{s+=$1} END {print s}'
}
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k/1024}'; }

# ------------------------------------------------------------------ start both computes
e2e_agent_start
t_go=$SECONDS
# Registered = the service reported at least once (so it has done its start-up work).
go_up() { [[ $(svc_db | awk '{print $1}') -ge 1 ]]; }
wait_until 120 go_up || die "our agent did not register as $E2E_HOST in 120 s: $(tail -n 5 "$E2E_AGENT_LOG")"
echo "our agent is up as $E2E_HOST (pid $E2E_AGENT_PID)" >&2
t_py=$SECONDS
"$ROOT/tests/aio/fake-compute.sh" start "$PY_HOST" >&2
read -r PY_PID _ <"$AIO_RUN/fake-compute-$PY_HOST.pid"
read -r PYN_PID _ <"$AIO_RUN/fake-ovs-agent-$PY_HOST.pid"

# ------------------------------------------------------------------ idle RSS
idle_until() { local left=$(($1 + IDLE_S - SECONDS)); ((left > 0)) && sleep "$left"; return 0; }
idle_until "$t_go"
go_rss=$(rss_kb "$E2E_AGENT_PID") go_tree=$(tree_rss_kb "$E2E_AGENT_PID")
idle_until "$t_py"
py_rss=$(rss_kb "$PY_PID") py_tree=$(tree_rss_kb "$PY_PID")
pyn_rss=$(rss_kb "$PYN_PID") pyn_tree=$(tree_rss_kb "$PYN_PID")

# ------------------------------------------------------------------ conductor round trips
# The machine is shared and its load drifts: run ROUNDS rounds, each client in turn, and
# pool every round trip into one distribution per client.
echo "conductor: $N_COND × Service.get_by_host_and_binary per client, in $ROUNDS interleaved rounds" >&2
rm -f "$E2E_WORK"/lat-{go,nova,oslo}.txt
py_cond() { # MODE N: one round of the Python baseline (its warnings go to a file)
	local err=$E2E_WORK/conductor-$1.err
	/usr/bin/python3 "$HERE/agent_conductor_baseline.py" --mode "$1" -n "$2" --raw "$E2E_WORK/lat-$1.txt" \
		"$E2E_HOST" >/dev/null 2>"$err" || die "python conductor baseline ($1) failed: $(tail -n 5 "$err")"
}
per=$(((N_COND + ROUNDS - 1) / ROUNDS))
for ((r = 1; r <= ROUNDS; r++)); do
	"$RPCB" conductor -n "$per" -host "$E2E_HOST" -raw "$E2E_WORK/lat-go.txt" >/dev/null
	py_cond nova "$per"
	py_cond oslo "$per"
done
# lat_stats FILE → "n p50 p99 mean" in ms, nearest-rank percentiles.
lat_stats() {
	sort -n "$1" | awk '{v[NR]=$1; s+=$1} END {
		r50=int((NR*50+99)/100); r99=int((NR*99+99)/100);
		printf "n=%d p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f", NR, v[r50], v[r99], s/NR}'
}
cond_go=$(lat_stats "$E2E_WORK/lat-go.txt")
cond_nova=$(lat_stats "$E2E_WORK/lat-nova.txt")
cond_oslo=$(lat_stats "$E2E_WORK/lat-oslo.txt")

# ------------------------------------------------------------------ dispatch
echo "dispatch: $N_FLOOD ping calls ($INFLIGHT and 1 in flight) and casts to each server, alternating" >&2
fl_go=$("$RPCB" flood -host "$E2E_HOST" -n "$N_FLOOD" -c "$INFLIGHT")
fl_py=$("$RPCB" flood -host "$PY_HOST" -n "$N_FLOOD" -c "$INFLIGHT")
fl1_go=$("$RPCB" flood -host "$E2E_HOST" -n $((N_FLOOD / 5)) -c 1)
fl1_py=$("$RPCB" flood -host "$PY_HOST" -n $((N_FLOOD / 5)) -c 1)
ca_go=$("$RPCB" casts -host "$E2E_HOST" -n "$N_FLOOD")
ca_py=$("$RPCB" casts -host "$PY_HOST" -n "$N_FLOOD")
go_rss_after=$(rss_kb "$E2E_AGENT_PID")
py_rss_after=$(rss_kb "$PY_PID")

# ------------------------------------------------------------------ report
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1==k {print $2}'; }
echo
echo "== nova-container-agent figures ($(date -u '+%F %T') UTC, $(git -C "$ROOT" describe --always --dirty); $(nproc) cores, load average$(uptime | sed 's/.*load average//'))"
printf '%-44s %18s %18s %18s\n' "figure" "ours (Go agent)" "nova-compute (py)" "neutron-ovs-agent"
printf '%-44s %18s %18s %18s\n' "idle RSS ${IDLE_S}s after start, process" "$(mb "$go_rss")" "$(mb "$py_rss")" "$(mb "$pyn_rss")"
printf '%-44s %18s %18s %18s\n' "idle RSS, process + children" "$(mb "$go_tree")" "$(mb "$py_tree")" "$(mb "$pyn_tree")"
printf '%-44s %18s %18s\n' "RSS after the RPC floods below" "$(mb "$go_rss_after")" "$(mb "$py_rss_after")"
echo
printf '%-44s %18s %18s %18s\n' "conductor round trip, ms ($ROUNDS rounds)" "ours (Go)" "nova objects (py)" "plain oslo (py)"
printf '%-44s %18s %18s %18s\n' "  calls" "$(kv "$cond_go" n)" "$(kv "$cond_nova" n)" "$(kv "$cond_oslo" n)"
for k in p50_ms p99_ms mean_ms; do
	printf '%-44s %18s %18s %18s\n' "  $k" "$(kv "$cond_go" $k)" "$(kv "$cond_nova" $k)" "$(kv "$cond_oslo" $k)"
done
echo
printf '%-44s %18s %18s\n' "RPC server dispatch (same Go client)" "ours (Go agent)" "nova-compute (py)"
printf '%-44s %18s %18s\n' "  ping calls/s, $INFLIGHT in flight (n=$N_FLOOD)" "$(kv "$fl_go" msgs_per_s)" "$(kv "$fl_py" msgs_per_s)"
printf '%-44s %18s %18s\n' "    p50 / p99 ms" "$(kv "$fl_go" p50_ms) / $(kv "$fl_go" p99_ms)" "$(kv "$fl_py" p50_ms) / $(kv "$fl_py" p99_ms)"
printf '%-44s %18s %18s\n' "  ping calls/s, 1 in flight (n=$((N_FLOOD / 5)))" "$(kv "$fl1_go" msgs_per_s)" "$(kv "$fl1_py" msgs_per_s)"
printf '%-44s %18s %18s\n' "    p50 / p99 ms" "$(kv "$fl1_go" p50_ms) / $(kv "$fl1_go" p99_ms)" "$(kv "$fl1_py" p50_ms) / $(kv "$fl1_py" p99_ms)"
# A server that kept up with the publisher only shows the client's rate: a lower bound.
cast_rate() { if [[ $(kv "$1" kept_up) == true ]]; then echo "≥ $(kv "$1" msgs_per_s)"; else kv "$1" msgs_per_s; fi; }
printf '%-44s %18s %18s\n' "  ping casts/s taken off the queue (n=$N_FLOOD)" "$(cast_rate "$ca_go")" "$(cast_rate "$ca_py")"
echo
echo "raw: conductor go: $cond_go"
echo "raw: conductor nova: $cond_nova"
echo "raw: conductor oslo: $cond_oslo"
echo "raw: flood go: $fl_go | c=1: $fl1_go | casts: $ca_go"
echo "raw: flood py: $fl_py | c=1: $fl1_py | casts: $ca_py"
echo "(≥: the server drained its queue as fast as the one client published: the client's rate, a lower bound)"
