#!/usr/bin/env bash
# Stops what tests/aio/up.sh started, in reverse order, by pidfile; a daemon that
# up.sh only adopted (it was running before) is left alone. SIGTERM, then SIGKILL
# (neutron-server ignores SIGTERM for more than 15 s).
#   --purge  also drop the all-in-one's databases and remove $NCA_AIO_DIR
#            (configs, keystone keys, glance images, state markers).
set -euo pipefail
_t0=$(date +%s.%N)
cd "$(dirname "$0")"
# shellcheck source=tests/aio/lib.sh
. ./lib.sh

purge=false
case ${1:-} in
--purge) purge=true ;;
"") ;;
*) die "usage: $0 [--purge]" ;;
esac

mkdir -p "$AIO_RUN"
exec 9>"$AIO_RUN/lock"
flock 9

# Fake computes first: they are clients of everything below. fake-compute.sh
# stop also removes their private OVS bridges.
declare -A fc=()
for f in "$AIO_RUN"/fake-compute-*.pid "$AIO_RUN"/fake-ovs-agent-*.pid; do
	[[ -e $f ]] || continue
	n=$(basename "$f" .pid)
	n=${n#fake-compute-}
	fc[${n#fake-ovs-agent-}]=1
done
for h in "${!fc[@]}"; do
	./fake-compute.sh stop "$h" &
done
wait

stop() { # NAME [TERM_SECONDS]
	if owned_pid "$1" >/dev/null; then
		say "stopping $1"
		stop_owned "$1" "${2:-15}"
	else
		rm -f "$AIO_RUN/$1.pid" "$AIO_RUN/$1.conf.sum"
	fi
}

# The OpenStack services hold no state of their own: stop them concurrently
# (one by one costs ~40 s: oslo.service waits out its graceful shutdown).
pids=()
for s in neutron-server nova-scheduler nova-conductor nova-api placement glance-api keystone; do
	stop "$s" 20 &
	pids+=($!)
done
wait "${pids[@]}"

if $purge && mariadb-admin ping >/dev/null 2>&1; then
	say "purge: dropping databases and users"
	sql=""
	for d in keystone glance placement nova_api nova nova_cell0 neutron; do sql+="DROP DATABASE IF EXISTS $d; "; done
	for u in keystone glance placement nova neutron; do
		sql+="DROP USER IF EXISTS '$u'@'127.0.0.1'; DROP USER IF EXISTS '$u'@'localhost'; "
	done
	mariadb -e "$sql" || echo "  WARNING: dropping databases failed"
fi

stop lxcfs
if ! mountpoint -q /var/lib/lxcfs 2>/dev/null; then :; elif [[ ! -f $AIO_RUN/lxcfs.adopted ]]; then
	fusermount3 -u /var/lib/lxcfs 2>/dev/null || umount -l /var/lib/lxcfs 2>/dev/null || true
fi
stop dockerd 30
stop containerd
if [[ -f $AIO_RUN/openvswitch.owned ]]; then
	say "stopping openvswitch (ovs-ctl stop)"
	/usr/share/openvswitch/scripts/ovs-ctl stop >>"$AIO_LOG/openvswitch.log" 2>&1 || true
	rm -f "$AIO_RUN/openvswitch.owned"
fi
stop memcached
if owned_pid rabbitmq >/dev/null; then
	say "stopping rabbitmq (rabbitmqctl shutdown)"
	rabbitmqctl -q shutdown >>"$AIO_LOG/rabbitmq.log" 2>&1 || true
	stop rabbitmq 20
fi
if owned_pid mariadb >/dev/null; then
	say "stopping mariadb"
	stop_owned mariadb 60
fi

for a in "$AIO_RUN"/*.adopted; do
	[[ -e $a ]] || continue
	say "left running (not started by us): $(basename "$a" .adopted)"
	rm -f "$a"
done

if $purge; then
	say "purge: removing $NCA_AIO_DIR"
	rm -rf "${NCA_AIO_DIR:?}"
fi
say "down"
