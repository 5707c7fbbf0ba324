#!/usr/bin/env bash
# Starts and stops nova-container-agent as the all-in-one's compute host (host nca-1).
#   tests/agent.sh start [EXTRA_CONFIG...]   build if needed, start in the background (idempotent)
#   tests/agent.sh stop                      SIGTERM (graceful drain), SIGKILL after 30 s
#   tests/agent.sh restart | status | log
# Without systemd, the pidfile is the proof that we started it: stop never kills anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}
RUN=${NCA_AGENT_RUN:-/run/nca-agent}
LOG=${NCA_AGENT_LOG:-/var/log/nca-agent.log}
BIN=${NCA_AGENT_BIN:-bin/nova-container-agent}
mkdir -p "$RUN"

pid() {
	local p
	[[ -f $RUN/agent.pid ]] || return 1
	read -r p <"$RUN/agent.pid"
	[[ -n $p && -d /proc/$p ]] && grep -q nova-container-agent "/proc/$p/cmdline" 2>/dev/null || return 1
	echo "$p"
}

case ${1:-} in
start)
	shift
	[[ -x $BIN ]] || make -s build
	if p=$(pid); then
		# A running agent is reused only if it is this checkout's current binary:
		# one started from another checkout, or from a binary rebuilt since, would
		# test code other than what is here.
		exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
		if [[ $exe == "$(realpath "$BIN")" ]]; then
			echo "agent already running (pid $p)"
			exit 0
		fi
		echo "agent pid $p runs ${exe:-an unknown binary}, not $(realpath "$BIN"): restarting it"
		"$0" stop
	fi
	args=(--config-file "$NCA_AIO_DIR/agent.conf" --config-file "$NCA_AIO_DIR/openvswitch_agent.ini")
	for f in "$@"; do args+=(--config-file "$f"); done
	setsid "$BIN" "${args[@]}" >>"$LOG" 2>&1 </dev/null &
	echo $! >"$RUN/agent.pid"
	echo "agent started (pid $!, log $LOG)"
	;;
stop)
	if ! p=$(pid); then
		echo "agent not running"
		rm -f "$RUN/agent.pid"
		exit 0
	fi
	kill -TERM "$p"
	for _ in $(seq 60); do
		[[ -d /proc/$p ]] || break
		sleep 0.5
	done
	[[ -d /proc/$p ]] && kill -KILL "$p"
	rm -f "$RUN/agent.pid"
	echo "agent stopped"
	;;
restart)
	"$0" stop
	shift
	"$0" start "$@"
	;;
status)
	if p=$(pid); then echo "running (pid $p)"; else echo "stopped"; exit 1; fi
	;;
log)
	echo "$LOG"
	;;
*)
	echo "usage: $0 start [EXTRA_CONFIG...]|stop|restart|status|log" >&2
	exit 2
	;;
esac
