# shellcheck shell=bash
# Shared helpers for the all-in-one scripts (up.sh, down.sh, fake-compute.sh).
# Sourced, never executed. Every daemon we start gets a log under $AIO_LOG and a
# pidfile under $AIO_RUN; a pidfile is our proof of ownership, so down.sh never
# touches a daemon that somebody else started (we only "adopt" those).

NCA_AIO_DIR=${NCA_AIO_DIR:-/var/lib/nca-aio}
AIO_LOG=${AIO_LOG:-/var/log/nca-aio}
AIO_RUN=${AIO_RUN:-/run/nca-aio}
AIO_ETC=$NCA_AIO_DIR/etc
AIO_STATE=$NCA_AIO_DIR/state
# Debian's modules (nova, neutron, oslo, kombu) are only importable by Debian's
# interpreter; a pyenv python3 may come first on PATH.
PY=/usr/bin/python3

# Fixed credentials: this is a throwaway single-machine test cloud bound to 127.0.0.1.
AIO_PASS=${AIO_PASS:-nca-secret}
AIO_ADMIN_PASS=${AIO_ADMIN_PASS:-nca-admin}
AIO_DEMO_PASS=${AIO_DEMO_PASS:-nca-demo}
AIO_RABBIT_URL=${AIO_RABBIT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
AIO_KEYSTONE=http://127.0.0.1:5000/v3
AIO_REGION=RegionOne

_t0=${_t0:-$(date +%s.%N)}

# say prints a progress line with the elapsed time since the script began.
say() { printf '[aio %6.1fs] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$_t0" 'BEGIN{print a-b}')" "$*"; }

# die prints a message, the tail of the named service's log if given, and exits.
die() {
	local msg=$1 svc=${2:-}
	printf '[aio] FAILED: %s\n' "$msg" >&2
	if [[ -n $svc && -f $AIO_LOG/$svc.log ]]; then
		printf -- '----- last 40 lines of %s -----\n' "$AIO_LOG/$svc.log" >&2
		tail -n 40 "$AIO_LOG/$svc.log" >&2
		printf -- '-----\n' >&2
	fi
	exit 1
}

# proc_start_time prints the kernel start time of PID (field 22 of /proc/PID/stat),
# used with the pid to detect pid reuse.
proc_start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# owned_pid prints the pid of service NAME if we started it and it still runs.
owned_pid() {
	local f=$AIO_RUN/$1.pid pid st
	[[ -f $f ]] || return 1
	read -r pid st <"$f" || return 1
	[[ -n $pid && -d /proc/$pid ]] || return 1
	[[ -z $st || $(proc_start_time "$pid") == "$st" ]] || return 1
	echo "$pid"
}

# record_pid writes the pidfile (pid and start time) that marks NAME as ours.
record_pid() { echo "$2 $(proc_start_time "$2")" >"$AIO_RUN/$1.pid"; }

# start_bg NAME CMD... runs CMD in its own session with its log, records the pid.
start_bg() {
	local name=$1
	shift
	mkdir -p "$AIO_LOG" "$AIO_RUN"
	printf '\n===== %s starting: %s\n' "$(date -Is)" "$*" >>"$AIO_LOG/$name.log"
	# 9>&-: fd 9 is up.sh's lock; a daemon inheriting it would hold it forever.
	setsid "$@" >>"$AIO_LOG/$name.log" 2>&1 </dev/null 9>&- &
	record_pid "$name" $!
}

# port_open PORT succeeds when something listens on 127.0.0.1:PORT.
port_open() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# wait_for NAME SECONDS CMD... polls CMD until it succeeds; fails loudly with NAME's
# log if the time runs out or NAME's process (when we own it) dies meanwhile.
wait_for() {
	local name=$1 secs=$2
	shift 2
	local end=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		if [[ -f $AIO_RUN/$name.pid ]] && ! owned_pid "$name" >/dev/null; then
			die "$name exited during startup" "$name"
		fi
		((SECONDS < end)) || die "$name not ready after ${secs}s (waiting for: $*)" "$name"
		sleep 0.5
	done
}

# http_up URL succeeds when URL answers any HTTP status.
http_up() { [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1") != 000 ]]; }

# stop_owned NAME [TERM_SECONDS] stops a daemon we started: SIGTERM to its process
# group, then SIGKILL after TERM_SECONDS (neutron-server ignores SIGTERM for >15 s).
stop_owned() {
	local name=$1 secs=${2:-15} pid
	if ! pid=$(owned_pid "$name"); then
		rm -f "$AIO_RUN/$name.pid"
		return 0
	fi
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	local end=$((SECONDS + secs))
	while [[ -d /proc/$pid ]] && ((SECONDS < end)); do sleep 0.3; done
	if [[ -d /proc/$pid ]]; then
		echo "  $name ignored SIGTERM for ${secs}s: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		sleep 0.3
	fi
	# Workers that left the group (uwsgi, oslo.service) still carry our session id.
	local p
	for p in $(ps -eo pid=,sid= | awk -v s="$pid" '$2==s{print $1}'); do kill -KILL "$p" 2>/dev/null || true; done
	rm -f "$AIO_RUN/$name.pid" "$AIO_RUN/$name.conf.sum" "$AIO_RUN/$name.started"
}

# write_if_changed FILE: writes stdin to FILE only when the content differs, so a
# re-run does not touch mtimes; returns 0 when it wrote.
write_if_changed() {
	local f=$1 tmp
	tmp=$(mktemp)
	cat >"$tmp"
	mkdir -p "$(dirname "$f")"
	if [[ -f $f ]] && cmp -s "$tmp" "$f"; then
		rm -f "$tmp"
		return 1
	fi
	mv "$tmp" "$f"
	chmod 0640 "$f"
	return 0
}

# conf_sum prints a checksum of the given files: a running service whose recorded
# checksum differs is restarted by up.sh so config edits take effect on re-run.
conf_sum() { cat "$@" 2>/dev/null | md5sum | cut -d' ' -f1; }
