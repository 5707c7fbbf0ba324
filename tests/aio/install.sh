#!/usr/bin/env bash
# Installs the all-in-one's Debian packages without letting any postinst start a
# daemon or prompt: policy-rc.d exits 101, debconf is noninteractive, and every
# dbconfig-common / keystone-registration question is preseeded to false (up.sh
# does the database and keystone work itself, faster and idempotently).
# Fast no-op when everything is installed. Called by up.sh.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tests/aio/lib.sh
. ./lib.sh

PKGS=(
	mariadb-server python3-pymysql memcached python3-memcache
	rabbitmq-server
	uwsgi-core uwsgi-plugin-python3
	keystone python3-keystoneclient
	glance-api placement-api
	nova-api nova-conductor nova-scheduler python3-nova
	neutron-server neutron-openvswitch-agent
	python3-openstackclient python3-osc-placement
	python3-oslo.messaging
	openvswitch-switch docker.io lxcfs
	curl jq iproute2 iputils-ping ethtool openssh-client
)

mkdir -p "$AIO_LOG" "$AIO_RUN"
# One dpkg-query for all: a re-run of up.sh should take seconds.
declare -A have=()
while read -r p st; do [[ $st == installed ]] && have[$p]=1; done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null || true)
missing=()
for p in "${PKGS[@]}"; do [[ -n ${have[$p]:-} ]] || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
	say "packages: all ${#PKGS[@]} installed"
	exit 0
fi
say "packages: installing ${#missing[@]} missing: ${missing[*]}"

if [[ ! -x /usr/sbin/policy-rc.d ]]; then
	printf '#!/bin/sh\n# Written by nova-container-agent tests/aio: no daemon starts from postinst.\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
fi

sel=()
for p in keystone glance nova neutron placement; do
	sel+=("$p $p/configure_db boolean false")
	sel+=("$p $p/configure_rabbit boolean false")
	sel+=("$p $p/configure_ksat boolean false")
done
sel+=("keystone keystone/create-admin-tenant boolean false")
sel+=("nova nova/configure_neutron boolean false")
sel+=("nova nova/configure_placement boolean false")
sel+=("neutron neutron/configure_nova boolean false")
for p in keystone glance-api nova-api neutron-server neutron-api placement-api; do
	sel+=("$p $p/register-endpoint boolean false")
done
printf '%s\n' "${sel[@]}" | debconf-set-selections

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -y -q -o DPkg::Lock::Timeout=900 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
if ! apt_get install --no-install-recommends "${missing[@]}" >"$AIO_LOG/apt.log" 2>&1; then
	# Stale package lists on a fresh machine: refresh once and retry.
	apt_get update >>"$AIO_LOG/apt.log" 2>&1 || true
	apt_get install --no-install-recommends "${missing[@]}" >>"$AIO_LOG/apt.log" 2>&1 || die "apt-get install failed" apt
fi
say "packages: installed"
