#!/usr/bin/env bash
# Brings up an all-in-one OpenStack Zed control plane from Debian 12 packages,
# without systemd, bound to 127.0.0.1: MariaDB, RabbitMQ, memcached, keystone,
# glance, placement, nova (api, conductor, scheduler), neutron-server (ML2/OVS,
# VLAN provider networks), plus Docker, Open vSwitch and lxcfs for the agent.
#
# Idempotent: a daemon already running is kept (a daemon somebody else started is
# adopted, never restarted or stopped), one-time steps (db syncs, keystone
# registration) leave markers under $NCA_AIO_DIR/state. A service we own whose
# generated config changed is restarted. Writes admin-openrc, demo-openrc,
# agent.conf, openvswitch_agent.ini and env into $NCA_AIO_DIR. See README.md.
set -euo pipefail
_t0=$(date +%s.%N)
cd "$(dirname "$0")"
AIO_SRC=$PWD
# shellcheck source=tests/aio/lib.sh
. ./lib.sh

[[ $(id -u) == 0 ]] || die "must run as root"
mkdir -p "$AIO_LOG" "$AIO_RUN" "$AIO_ETC" "$AIO_STATE" "$NCA_AIO_DIR"
chmod 0700 "$NCA_AIO_DIR"
# Teammates and CI may run `make aio-up` concurrently: the second waits, then
# finds everything up.
exec 9>"$AIO_RUN/lock"
flock 9

./install.sh

AGENT_HOST=${NCA_AGENT_HOST:-nca-1}
DB="mysql+pymysql://%s:$AIO_PASS@127.0.0.1/%s?charset=utf8"
# dburl USER DB prints a SQLAlchemy URL for a service database.
dburl() { printf "$DB" "$1" "$2"; }

# ks_auth USER prints keystone password-auth options for a service user, the way
# nova and neutron read them from [keystone_authtoken], [placement], etc.
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
ks_authtoken() {
	cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
memcached_servers = 127.0.0.1:11211
service_token_roles_required = true
$(ks_auth "$1")
EOF
}

# ensure_service NAME PORT|- CONF... -- CMD...: starts NAME unless it runs; restarts
# it when we own it and its config checksum changed. PORT '-' means no port.
ensure_service() {
	local name=$1 port=$2
	shift 2
	local confs=()
	while [[ $1 != -- ]]; do confs+=("$1"); shift; done
	shift
	local sum
	sum=$(conf_sum "${confs[@]}")
	if owned_pid "$name" >/dev/null; then
		if [[ $(cat "$AIO_RUN/$name.conf.sum" 2>/dev/null) == "$sum" ]]; then
			return 0
		fi
		say "$name: config changed, restarting"
		stop_owned "$name" 20
	elif [[ $port != - ]] && port_open "$port"; then
		say "$name: port $port already served by a process we did not start: adopting it"
		echo adopted >"$AIO_RUN/$name.adopted"
		return 0
	fi
	say "$name: starting"
	date -u '+%F %T' >"$AIO_RUN/$name.started"
	start_bg "$name" "$@"
	echo "$sum" >"$AIO_RUN/$name.conf.sum"
	# A file, not an array: some services start from runpar's subshells.
	echo "$name" >>"$STARTED_LIST"
}
STARTED_LIST=$AIO_RUN/.started-this-run
: >"$STARTED_LIST"

# ---------------------------------------------------------------- MariaDB
phase_mariadb() {
	write_if_changed "$AIO_ETC/mariadb.cnf" <<EOF || true
[mysqld]
bind-address = 127.0.0.1
max_connections = 1000
innodb_buffer_pool_size = 128M
EOF
	mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
	if [[ ! -d /var/lib/mysql/mysql ]]; then
		say "mariadb: initialising /var/lib/mysql"
		mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$AIO_LOG/mariadb.log" 2>&1 || die "mariadb-install-db" mariadb
	fi
	if [[ -S /run/mysqld/mysqld.sock ]] && mariadb-admin ping >/dev/null 2>&1 && ! owned_pid mariadb >/dev/null; then
		[[ -f $AIO_RUN/mariadb.adopted ]] || say "mariadb: already running, adopting it"
		echo adopted >"$AIO_RUN/mariadb.adopted"
	else
		ensure_service mariadb 3306 "$AIO_ETC/mariadb.cnf" -- \
			/usr/sbin/mariadbd --defaults-extra-file="$AIO_ETC/mariadb.cnf" --user=mysql
	fi
	wait_for mariadb 60 mariadb-admin ping
	local sql="" d u
	for d in keystone:keystone glance:glance placement:placement nova_api:nova nova:nova nova_cell0:nova neutron:neutron; do
		u=${d#*:} d=${d%:*}
		sql+="CREATE DATABASE IF NOT EXISTS $d; "
		sql+="CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$AIO_PASS'; "
		sql+="CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$AIO_PASS'; "
		sql+="GRANT ALL PRIVILEGES ON $d.* TO '$u'@'127.0.0.1'; GRANT ALL PRIVILEGES ON $d.* TO '$u'@'localhost'; "
	done
	mariadb -e "$sql" || die "creating databases" mariadb
}
# fresh_db DB... empties databases whose sync never finished (no marker): a run
# interrupted mid-migration leaves a schema no migration tool can resume from
# (neutron-db-manage then fails on a half-built table). Database-level grants
# survive the drop.
fresh_db() {
	local sql="" d
	for d in "$@"; do sql+="DROP DATABASE IF EXISTS $d; CREATE DATABASE $d; "; done
	mariadb -e "$sql"
}

# ---------------------------------------------------------------- RabbitMQ
phase_rabbitmq() {
	if port_open 5672 && ! owned_pid rabbitmq >/dev/null; then
		[[ -f $AIO_RUN/rabbitmq.adopted ]] || say "rabbitmq: already running on :5672, adopting it"
		echo adopted >"$AIO_RUN/rabbitmq.adopted"
		return 0
	fi
	# The machine's hostname may not resolve: pin the node name and epmd address.
	if ! grep -q '^NODENAME=rabbit@localhost' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null; then
		printf 'NODENAME=rabbit@localhost\nERL_EPMD_ADDRESS=127.0.0.1\nNODE_IP_ADDRESS=127.0.0.1\n' >/etc/rabbitmq/rabbitmq-env.conf
	fi
	ensure_service rabbitmq 5672 /etc/rabbitmq/rabbitmq-env.conf -- /usr/sbin/rabbitmq-server
	wait_for rabbitmq 90 port_open 5672
	rabbitmqctl -q await_startup >/dev/null 2>&1 || die "rabbitmqctl await_startup" rabbitmq
}

# ---------------------------------------------------------------- memcached
phase_memcached() {
	ensure_service memcached 11211 -- /usr/bin/memcached -u memcache -l 127.0.0.1 -p 11211 -m 64
	wait_for memcached 20 port_open 11211
}

# ---------------------------------------------------------------- uwsgi apps
uwsgi_cmd() { # PORT WSGI_FILE
	echo /usr/bin/uwsgi --plugins python3 --add-header Connection:close --master --die-on-term \
		--enable-threads --lazy-apps --processes 1 --threads 4 --http-socket "127.0.0.1:$1" \
		--wsgi-file "$2" --buffer-size 65535
}

# ---------------------------------------------------------------- keystone
phase_keystone_conf() {
	install -d -m 0700 "$NCA_AIO_DIR/keystone/fernet-keys" "$NCA_AIO_DIR/keystone/credential-keys"
	write_if_changed "$AIO_ETC/keystone/keystone.conf" <<EOF || true
[DEFAULT]
log_dir =
[database]
connection = $(dburl keystone keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $NCA_AIO_DIR/keystone/fernet-keys
# keystone 22.0.2 (bookworm-security) loads the receipt provider in bootstrap:
# without this it looks for /etc/keystone/fernet-keys and exits.
[fernet_receipts]
key_repository = $NCA_AIO_DIR/keystone/fernet-keys
[credential]
key_repository = $NCA_AIO_DIR/keystone/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memcached
memcache_servers = 127.0.0.1:11211
EOF
}
ks_manage() { keystone-manage --config-file "$AIO_ETC/keystone/keystone.conf" "$@"; }
# fernet_keys DIR writes a fresh key repository (staged key 0, primary key 1): what
# "keystone-manage fernet_setup/credential_setup" do, minus two Python start-ups.
fernet_keys() {
	local k
	[[ -f $1/0 ]] && return 0
	for k in 0 1; do
		head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n' >"$1/$k"
		chmod 0600 "$1/$k"
	done
}
# phase_keystone syncs, bootstraps, starts and registers keystone; it runs beside
# the other services' db syncs (runpar).
phase_keystone() {
	if [[ ! -f $AIO_STATE/keystone.synced ]]; then
		say "keystone: db_sync, bootstrap"
		fresh_db keystone >>"$AIO_LOG/keystone-manage.log" 2>&1 || die "keystone database reset" keystone-manage
		rm -f "$AIO_STATE/keystone.registered" # what it registered went with the database
		fernet_keys "$NCA_AIO_DIR/keystone/fernet-keys"
		fernet_keys "$NCA_AIO_DIR/keystone/credential-keys"
		{
			ks_manage db_sync &&
				ks_manage bootstrap --bootstrap-password "$AIO_ADMIN_PASS" \
					--bootstrap-admin-url http://127.0.0.1:5000/v3/ \
					--bootstrap-internal-url http://127.0.0.1:5000/v3/ \
					--bootstrap-public-url http://127.0.0.1:5000/v3/ \
					--bootstrap-region-id "$AIO_REGION"
		} >>"$AIO_LOG/keystone-manage.log" 2>&1 || die "keystone-manage" keystone-manage
		touch "$AIO_STATE/keystone.synced"
	fi
	# shellcheck disable=SC2046
	ensure_service keystone 5000 "$AIO_ETC/keystone/keystone.conf" -- \
		env OS_KEYSTONE_CONFIG_DIR="$AIO_ETC/keystone" $(uwsgi_cmd 5000 /usr/bin/keystone-wsgi-public)
	phase_register
}

phase_register() {
	local sum
	sum=$(conf_sum "$AIO_SRC/register.py")
	if [[ $(cat "$AIO_STATE/keystone.registered" 2>/dev/null) == "$sum" ]]; then return 0; fi
	wait_for keystone 180 http_up http://127.0.0.1:5000/v3
	say "keystone: registering projects, users, services, endpoints"
	AIO_PASS=$AIO_PASS AIO_ADMIN_PASS=$AIO_ADMIN_PASS AIO_DEMO_PASS=$AIO_DEMO_PASS AIO_REGION=$AIO_REGION \
		$PY "$AIO_SRC/register.py" >>"$AIO_LOG/register.log" 2>&1 || die "keystone registration" register
	echo "$sum" >"$AIO_STATE/keystone.registered"
}

# ---------------------------------------------------------------- glance
phase_glance_conf() {
	install -d "$NCA_AIO_DIR/glance/images" "$NCA_AIO_DIR/glance/staging" "$NCA_AIO_DIR/glance/tasks"
	write_if_changed "$AIO_ETC/glance/glance-api.conf" <<EOF || true
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
enabled_backends = file:file
[database]
connection = $(dburl glance glance)
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $NCA_AIO_DIR/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $NCA_AIO_DIR/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $NCA_AIO_DIR/glance/tasks
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $NCA_AIO_DIR/glance/lock
$(ks_authtoken glance)
EOF
}
phase_glance_sync() {
	[[ -f $AIO_STATE/glance.synced ]] && return 0
	fresh_db glance >>"$AIO_LOG/glance-manage.log" 2>&1 || return 1
	glance-manage --config-file "$AIO_ETC/glance/glance-api.conf" db_sync >>"$AIO_LOG/glance-manage.log" 2>&1 || return 1
	touch "$AIO_STATE/glance.synced"
}
phase_glance() {
	ensure_service glance-api 9292 "$AIO_ETC/glance/glance-api.conf" -- \
		/usr/bin/glance-api --config-file "$AIO_ETC/glance/glance-api.conf"
}

# ---------------------------------------------------------------- placement
phase_placement_conf() {
	write_if_changed "$AIO_ETC/placement/placement.conf" <<EOF || true
[placement_database]
connection = $(dburl placement placement)
[api]
auth_strategy = keystone
$(ks_authtoken placement)
EOF
}
phase_placement_sync() {
	[[ -f $AIO_STATE/placement.synced ]] && return 0
	fresh_db placement >>"$AIO_LOG/placement-manage.log" 2>&1 || return 1
	placement-manage --config-file "$AIO_ETC/placement/placement.conf" db sync >>"$AIO_LOG/placement-manage.log" 2>&1 || return 1
	touch "$AIO_STATE/placement.synced"
}
phase_placement() {
	# shellcheck disable=SC2046
	ensure_service placement 8778 "$AIO_ETC/placement/placement.conf" -- \
		env OS_PLACEMENT_CONFIG_DIR="$AIO_ETC/placement" $(uwsgi_cmd 8778 /usr/bin/placement-api)
}

# ---------------------------------------------------------------- nova
phase_nova_conf() {
	install -d "$NCA_AIO_DIR/nova" "$NCA_AIO_DIR/nova/lock"
	write_if_changed "$AIO_ETC/nova/nova.conf" <<EOF || true
[DEFAULT]
transport_url = $AIO_RABBIT_URL
my_ip = 127.0.0.1
state_path = $NCA_AIO_DIR/nova
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = 8774
osapi_compute_workers = 1
allow_resize_to_same_host = true
[wsgi]
api_paste_config = /etc/nova/api-paste.ini
[api]
auth_strategy = keystone
[api_database]
connection = $(dburl nova nova_api)
[database]
connection = $(dburl nova nova)
[conductor]
workers = 1
[scheduler]
workers = 1
# New computes (our agent, fake-compute) get mapped to cell1 without a manual
# "nova-manage cell_v2 discover_hosts".
discover_hosts_in_cells_interval = 10
[oslo_concurrency]
lock_path = $NCA_AIO_DIR/nova/lock
[oslo_messaging_notifications]
driver = noop
$(ks_authtoken nova)
[service_user]
send_service_user_token = true
$(ks_auth nova)
[placement]
$(ks_auth placement)
[neutron]
$(ks_auth neutron)
[glance]
region_name = $AIO_REGION
[cinder]
os_region_name = $AIO_REGION
EOF
}
nova_manage() { nova-manage --config-file "$AIO_ETC/nova/nova.conf" "$@"; }
phase_nova_sync() {
	[[ -f $AIO_STATE/nova.synced ]] && return 0
	{
		# Not simple_cell_setup: it also discovers hosts, which needs the cell
		# database synced first. create_cell exits 2 when cell1 already exists.
		# db sync covers cell0 too.
		fresh_db nova_api nova nova_cell0 &&
			nova_manage api_db sync &&
			nova_manage cell_v2 map_cell0 --database_connection "$(dburl nova nova_cell0)" &&
			{ nova_manage cell_v2 create_cell --name=cell1 --verbose || [[ $? == 2 ]]; } &&
			nova_manage db sync
	} >>"$AIO_LOG/nova-manage.log" 2>&1 || return 1
	touch "$AIO_STATE/nova.synced"
}
phase_nova() {
	local c=$AIO_ETC/nova/nova.conf
	ensure_service nova-api 8774 "$c" -- /usr/bin/nova-api --config-file "$c"
	ensure_service nova-conductor - "$c" -- /usr/bin/nova-conductor --config-file "$c"
	ensure_service nova-scheduler - "$c" -- /usr/bin/nova-scheduler --config-file "$c"
}

# ---------------------------------------------------------------- neutron
phase_neutron_conf() {
	install -d "$NCA_AIO_DIR/neutron" "$NCA_AIO_DIR/neutron/lock"
	write_if_changed "$AIO_ETC/neutron/neutron.conf" <<EOF || true
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
bind_host = 127.0.0.1
bind_port = 9696
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
state_path = $NCA_AIO_DIR/neutron
api_paste_config = /etc/neutron/api-paste.ini
transport_url = $AIO_RABBIT_URL
# network-vif-plugged / vif-unplugged events to nova through [nova].
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
[database]
connection = $(dburl neutron neutron)
[oslo_concurrency]
lock_path = $NCA_AIO_DIR/neutron/lock
$(ks_authtoken neutron)
[nova]
$(ks_auth nova)
EOF
	write_if_changed "$AIO_ETC/neutron/ml2_conf.ini" <<EOF || true
[ml2]
type_drivers = flat,vlan
tenant_network_types =
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199
EOF
}
phase_neutron_sync() {
	[[ -f $AIO_STATE/neutron.synced ]] && return 0
	fresh_db neutron >>"$AIO_LOG/neutron-db-manage.log" 2>&1 || return 1
	neutron-db-manage --config-file "$AIO_ETC/neutron/neutron.conf" --config-file "$AIO_ETC/neutron/ml2_conf.ini" \
		upgrade head >>"$AIO_LOG/neutron-db-manage.log" 2>&1 || return 1
	touch "$AIO_STATE/neutron.synced"
}
phase_neutron() {
	local c=$AIO_ETC/neutron/neutron.conf m=$AIO_ETC/neutron/ml2_conf.ini
	ensure_service neutron-server 9696 "$c" "$m" -- /usr/bin/neutron-server --config-file "$c" --config-file "$m"
}

# ---------------------------------------------------------------- Open vSwitch
phase_ovs() {
	if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
		if [[ ! -f $AIO_RUN/openvswitch.owned ]]; then
			[[ -f $AIO_RUN/openvswitch.adopted ]] || say "openvswitch: already running, adopting it"
			echo adopted >"$AIO_RUN/openvswitch.adopted"
		fi
		return 0
	fi
	say "openvswitch: starting (ovs-ctl, userspace datapath only)"
	local ctl=/usr/share/openvswitch/scripts/ovs-ctl
	echo owned >"$AIO_RUN/openvswitch.owned"
	if ! $ctl start --system-id=random >>"$AIO_LOG/openvswitch.log" 2>&1 9>&-; then
		# ovs-ctl refuses to start ovs-vswitchd when "modprobe openvswitch" fails;
		# we only use the userspace (netdev) datapath, so start it without the module.
		say "openvswitch: ovs-ctl start failed (kernel module?): starting ovs-vswitchd for the userspace datapath only"
		$ctl start --system-id=random --no-ovs-vswitchd >>"$AIO_LOG/openvswitch.log" 2>&1 9>&- || die "ovs-ctl start ovsdb-server" openvswitch
		ovs-vswitchd unix:/var/run/openvswitch/db.sock --pidfile=/var/run/openvswitch/ovs-vswitchd.pid \
			--detach --no-chdir --log-file=/var/log/openvswitch/ovs-vswitchd.log >>"$AIO_LOG/openvswitch.log" 2>&1 9>&- ||
			die "ovs-vswitchd" openvswitch
	fi
	wait_for openvswitch 30 ovs-vsctl --timeout=3 show
}

# ---------------------------------------------------------------- Docker
phase_docker() {
	if docker info >/dev/null 2>&1; then
		local ours=false
		if owned_pid dockerd >/dev/null; then
			ours=true
		elif [[ ! -f $AIO_RUN/dockerd.adopted ]]; then
			say "docker: dockerd already running, adopting it"
			echo adopted >"$AIO_RUN/dockerd.adopted"
		fi
		live() { [[ $(docker info -f '{{.LiveRestoreEnabled}}' 2>/dev/null) == true ]]; }
		live && return 0
		if [[ ! -s /etc/docker/daemon.json ]]; then
			# live-restore is a reloadable option: SIGHUP applies it without
			# restarting dockerd or touching any container.
			mkdir -p /etc/docker && echo '{ "live-restore": true }' >/etc/docker/daemon.json
			local dpid
			dpid=$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd)
			say "docker: wrote /etc/docker/daemon.json (live-restore), reloading dockerd $dpid with SIGHUP"
			kill -HUP "$dpid"
			local i
			for i in 1 2 3 4 5 6; do live && return 0; sleep 0.5; done
		fi
		if ! $ours; then
			say "docker: WARNING: dockerd (not started by us) runs without live-restore and /etc/docker/daemon.json is not ours; leaving it"
			return 0
		fi
		say "docker: restarting our dockerd to enable live-restore"
		stop_owned dockerd 30
	fi
	[[ -s /etc/docker/daemon.json ]] || { mkdir -p /etc/docker && echo '{ "live-restore": true }' >/etc/docker/daemon.json; }
	if ! ctr version >/dev/null 2>&1; then
		# Debian ships containerd in /usr/bin and dockerd in /usr/sbin: resolve, never assume.
		ensure_service containerd - -- "$(command -v containerd)"
		wait_for containerd 30 ctr version
	fi
	ensure_service dockerd - /etc/docker/daemon.json -- "$(command -v dockerd)" --containerd=/run/containerd/containerd.sock
	wait_for dockerd 60 docker info
}

# ---------------------------------------------------------------- lxcfs
phase_lxcfs() {
	# A dead lxcfs (host restarted under us, or killed) leaves its FUSE mount in the table
	# with nothing serving it: every stat says "transport endpoint is not connected".
	# Nothing can use it again, so it is detached before a fresh lxcfs mounts there.
	if grep -q ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts && ! stat /var/lib/lxcfs >/dev/null 2>&1; then
		say "lxcfs: stale FUSE mount on /var/lib/lxcfs (no lxcfs behind it), detaching"
		umount -l /var/lib/lxcfs
		rm -f "$AIO_RUN/lxcfs.adopted"
	fi
	if mountpoint -q /var/lib/lxcfs; then
		if ! owned_pid lxcfs >/dev/null && [[ ! -f $AIO_RUN/lxcfs.adopted ]]; then
			say "lxcfs: already mounted on /var/lib/lxcfs, adopting it"
			echo adopted >"$AIO_RUN/lxcfs.adopted"
		fi
		return 0
	fi
	mkdir -p /var/lib/lxcfs
	ensure_service lxcfs - -- /usr/bin/lxcfs /var/lib/lxcfs
	wait_for lxcfs 20 mountpoint -q /var/lib/lxcfs
}

# ---------------------------------------------------------------- outputs
write_outputs() {
	local openrc
	openrc() { # USER PASS PROJECT
		cat <<EOF
# Written by tests/aio/up.sh.
export OS_AUTH_URL=http://127.0.0.1:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$1
export OS_PASSWORD=$2
export OS_PROJECT_NAME=$3
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$AIO_REGION
export OS_INTERFACE=public
export OS_SERVICE_PASSWORD=$AIO_PASS
EOF
	}
	openrc admin "$AIO_ADMIN_PASS" admin | write_if_changed "$NCA_AIO_DIR/admin-openrc" || true
	openrc demo "$AIO_DEMO_PASS" demo | write_if_changed "$NCA_AIO_DIR/demo-openrc" || true
	install -d "$NCA_AIO_DIR/agent/instances"
	write_if_changed "$NCA_AIO_DIR/agent.conf" <<EOF || true
# nova-compute-style configuration for nova-container-agent, written by tests/aio/up.sh.
# Like a real compute's: no [database] / [api_database] (computes reach the DB
# only through nova-conductor).
[DEFAULT]
host = $AGENT_HOST
transport_url = $AIO_RABBIT_URL
report_interval = 10
state_path = $NCA_AIO_DIR/agent
instances_path = $NCA_AIO_DIR/agent/instances
my_ip = 127.0.0.1
# A container host brings its guests back after a reboot, network first (nova's default, false,
# leaves them SHUTOFF for the operator to start).
resume_guests_state_on_host_boot = true
[oslo_concurrency]
lock_path = $NCA_AIO_DIR/agent/lock
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
	write_if_changed "$NCA_AIO_DIR/openvswitch_agent.ini" <<EOF || true
# neutron-openvswitch-agent-style configuration for the agent's L2 role, written by tests/aio/up.sh.
[DEFAULT]
host = $AGENT_HOST
transport_url = $AIO_RABBIT_URL
[ovs]
integration_bridge = br-int
bridge_mappings = physnet1:br-phys
datapath_type = netdev
[securitygroup]
firewall_driver = noop
[agent]
tunnel_types =
report_interval = 30
EOF
	write_if_changed "$NCA_AIO_DIR/env" <<EOF || true
# Environment for integration tests, written by tests/aio/up.sh. Source it.
export NCA_AIO_DIR=$NCA_AIO_DIR
export NCA_RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/
export NCA_OVSDB=unix:/var/run/openvswitch/db.sock
export NCA_AGENT_CONF=$NCA_AIO_DIR/agent.conf
export NCA_OVS_AGENT_CONF=$NCA_AIO_DIR/openvswitch_agent.ini
export NCA_AGENT_HOST=$AGENT_HOST
export NCA_PHYSNET=physnet1
export NCA_VLAN_RANGE=100:199
export NCA_DEMO_OPENRC=$NCA_AIO_DIR/demo-openrc
$(openrc admin "$AIO_ADMIN_PASS" admin | grep '^export')
EOF
}

# ---------------------------------------------------------------- main
# runpar NAME:FUNC... runs independent one-time steps concurrently (2 cores: the
# db syncs mostly wait on MariaDB), failing with the first failed step's log.
runpar() {
	local pids=() names=() i
	for i in "$@"; do
		"${i#*:}" &
		pids+=($!) names+=("${i%%:*}")
	done
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}"; then
			local p
			for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; done
			kill "${pids[@]}" 2>/dev/null || true
			# Only these steps: a bare wait would also wait for the daemons started above.
			wait "${pids[@]}" 2>/dev/null || true
			die "${names[$i]} failed" "${names[$i]}"
		fi
	done
}

phase_mariadb
phase_rabbitmq
phase_memcached
phase_ovs
phase_docker
phase_lxcfs
phase_keystone_conf
phase_glance_conf
phase_placement_conf
phase_nova_conf
phase_neutron_conf
if [[ ! -f $AIO_STATE/nova.synced || ! -f $AIO_STATE/neutron.synced || ! -f $AIO_STATE/glance.synced || ! -f $AIO_STATE/placement.synced ]]; then
	say "databases: syncing glance, placement, nova, neutron (in parallel)"
fi
runpar keystone:phase_keystone glance-manage:phase_glance_sync placement-manage:phase_placement_sync \
	nova-manage:phase_nova_sync neutron-db-manage:phase_neutron_sync
phase_glance
phase_placement
phase_nova
phase_neutron
wait_for keystone 180 http_up http://127.0.0.1:5000/v3
wait_for glance-api 180 http_up http://127.0.0.1:9292/
wait_for placement 180 http_up http://127.0.0.1:8778/
wait_for nova-api 180 http_up http://127.0.0.1:8774/
wait_for neutron-server 240 http_up http://127.0.0.1:9696/
# Conductor and scheduler have no port: they are ready once they have reported
# (nova's first report comes 5 s after the RPC server started) since we started them.
svc_row() {
	local since
	since=$(cat "$AIO_RUN/$1.started" 2>/dev/null || echo 1970-01-01)
	[[ $(mariadb -N nova -e "SELECT COUNT(*) FROM services WHERE \`binary\`='$1' AND deleted=0 AND host='$(hostname)' AND updated_at >= '$since'") -ge 1 ]]
}
wait_for nova-conductor 180 svc_row nova-conductor
wait_for nova-scheduler 180 svc_row nova-scheduler
write_outputs
mapfile -t started <"$STARTED_LIST"
say "up: ${#started[@]} started${started:+ (${started[*]})}; files in $NCA_AIO_DIR: admin-openrc demo-openrc agent.conf openvswitch_agent.ini env"
