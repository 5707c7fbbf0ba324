#!/bin/bash
# build.sh — builds the Debian 12 test disk images used by the converter tests
# and benchmarks, without ever mounting a disk image (see docs/images.md §1, §7).
#
# usage: tests/images/build.sh STEP...
#   rootfs   debootstrap'ed Debian 12 tree  -> $OUT/rootfs-small
#   docker   that tree + container fixes, docker-imported as nca-test/debian12-systemd:latest
#            (marker $OUT/READY-docker-rootfs)
#   small    rootfs + docker + MBR / GPT(+/boot) disks, plain and zlib-compressed qcow2
#   big      small + default-jdk-headless, python3 (~2 GB used), MBR plain and compressed
#   xfs      small tree on an XFS root (MBR), filled through a loop mount of the raw file
#   lvm      small tree on LVM (RHEL-style rootvg/rootlv), ext4 LV, written without activation
#   all      small big xfs lvm
#   sizes    print what is in the cache
#
# Every product is cached in $OUT (default /var/cache/nca/images) and guarded by a
# stamp file written last, so an interrupted step is redone and a finished one is
# skipped. FORCE="docker small-gpt" rebuilds those products (names as in the stamp
# files, without .stamp; "docker" for the docker image); FORCE=1 rebuilds everything.
#
# Why no mount: the converter must read images built exactly like cloud images, and
# mkfs.ext4 -d + sfdisk + dd reproduce that without root-only loop mounts. The XFS
# variant is the exception (mkfs.xfs -p is not faithful, see images.md §7): it fills
# the filesystem through a loop mount of the *raw file being built*, never of a
# finished image.
set -euo pipefail

OUT=${NCA_IMAGES_DIR:-/var/cache/nca/images}
FORCE=${FORCE:-0}
SUITE=bookworm
TAG_DOCKER=nca-test/debian12-systemd:latest

# The mirror apt already uses on this host (deb822 or one-line format).
mirror() {
	local m
	m=$(grep -hoE '^(URIs:|deb) +(\[[^]]*\] +)?https?://[^ ]+/debian/?( |$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
		grep -oE 'https?://[^ ]+' | grep -v security | head -n1 || true)
	echo "${m:-http://deb.debian.org/debian}"
}

SMALL_PKGS=systemd,systemd-sysv,systemd-timesyncd,dbus,libpam-systemd,openssh-server,iproute2,iputils-ping,sudo,procps,less,ca-certificates,ifupdown,isc-dhcp-client,netbase,kmod,udev,locales,linux-image-amd64,initramfs-tools,grub-pc-bin,grub2-common,e2fsprogs,cron,vim-tiny,curl
# ~2 GB used, like a developer image: JDK, Python, a C and a Go toolchain.
BIG_PKGS="default-jdk-headless python3 python3-pip python3-numpy python3-dev git build-essential golang-go linux-headers-amd64"

log() { printf '[build.sh %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
forced() { [[ $FORCE == 1 || " $FORCE " == *" $1 "* ]]; }
done_p() { ! forced "$1" && [[ -f $OUT/$1.stamp ]]; }
stamp() { date -u +%FT%TZ >"$OUT/$1.stamp"; }

# need TOOL... installs the Debian package of each missing tool, so a fresh machine builds the
# images without manual steps.
need() {
	local c pkg missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null && continue
		case $c in
		sfdisk) pkg=fdisk ;; mkfs.ext4) pkg=e2fsprogs ;; qemu-img) pkg=qemu-utils ;; mkfs.xfs) pkg=xfsprogs ;;
		pvcreate | vgcreate | lvcreate) pkg=lvm2 ;; losetup) pkg=mount ;; docker) pkg=docker.io ;; *) pkg=$c ;;
		esac
		missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null ||
		die "could not install ${missing[*]}"
	for c in "$@"; do command -v "$c" >/dev/null || die "missing tool: $c"; done
}

# ---------------------------------------------------------------- rootfs
step_rootfs() {
	if done_p rootfs-small; then log "rootfs-small cached"; return; fi
	need debootstrap
	local dst=$OUT/rootfs-small tmp=$OUT/rootfs-small.tmp
	rm -rf "$tmp" "$dst"
	mkdir -p "$OUT/debs"
	log "debootstrap $SUITE from $(mirror) (minbase + ${SMALL_PKGS//,/ })"
	# --cache-dir keeps the .debs so a rebuild does not download again.
	debootstrap --variant=minbase --cache-dir="$OUT/debs" --include="$SMALL_PKGS" \
		"$SUITE" "$tmp" "$(mirror)" >"$OUT/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$OUT/debootstrap.log" >&2; die "debootstrap failed (log $OUT/debootstrap.log)"; }
	configure_rootfs "$tmp"
	mv "$tmp" "$dst"
	stamp rootfs-small
	log "rootfs-small: $(du -sb "$dst" | cut -f1) bytes, $(find "$dst" | wc -l) entries"
}

# configure_rootfs DIR: what a cloud image builder does to a fresh tree.
configure_rootfs() {
	local r=$1 uuid
	uuid=$(cat /proc/sys/kernel/random/uuid)
	echo "$uuid" >"$OUT/rootfs-small.uuid"
	echo debian12 >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	cat >"$r/etc/network/interfaces" <<-'EOF'
		source /etc/network/interfaces.d/*

		auto lo
		iface lo inet loopback
	EOF
	mkdir -p "$r/etc/network/interfaces.d"
	for i in eth0 ens3; do
		printf 'allow-hotplug %s\niface %s inet dhcp\n' "$i" "$i" >"$r/etc/network/interfaces.d/$i"
	done
	echo 'en_US.UTF-8 UTF-8' >"$r/etc/locale.gen"
	chroot "$r" locale-gen >/dev/null
	echo 'LANG=en_US.UTF-8' >"$r/etc/default/locale"
	# user debian: password locked, key or sudo only — what cloud images ship.
	chroot "$r" useradd -m -s /bin/bash -G sudo debian
	echo 'debian ALL=(ALL) NOPASSWD:ALL' >"$r/etc/sudoers.d/90-debian"
	chmod 0440 "$r/etc/sudoers.d/90-debian"
	# Per-instance identity must not live in the image (images.md §5).
	rm -f "$r"/etc/ssh/ssh_host_*
	mkdir -p "$r/etc/systemd/system/ssh.service.d"
	printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
		>"$r/etc/systemd/system/ssh.service.d/10-hostkeys.conf"
	: >"$r/etc/machine-id"
	rm -f "$r/var/lib/dbus/machine-id"
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$r/etc/fstab"
	write_grub_cfg "$r" "$uuid" "$uuid" ""
	chroot "$r" apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log "$r"/tmp/* "$r"/var/tmp/*
}

# write_grub_cfg ROOTDIR ROOT_UUID SEARCH_UUID BOOT_PREFIX — a grub.cfg like
# update-grub would write (no os-prober, one entry), found by filesystem UUID.
write_grub_cfg() {
	local r=$1 root_uuid=$2 search_uuid=$3 prefix=$4 k i
	k=$(cd "$r/boot" && ls vmlinuz-* | sort -V | tail -n1)
	i=initrd.img-${k#vmlinuz-}
	mkdir -p "$r/boot/grub"
	cat >"$r/boot/grub/grub.cfg" <<-EOF
		set timeout=1
		set default=0
		insmod part_msdos
		insmod part_gpt
		insmod ext2
		insmod xfs
		insmod lvm
		search --no-floppy --fs-uuid --set=root $search_uuid
		menuentry 'Debian GNU/Linux 12' {
		  linux $prefix/$k root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200 net.ifnames=0
		  initrd $prefix/$i
		}
	EOF
}

# ---------------------------------------------------------------- docker (quick)
# The rootfs with the container adaptations of images.md §2.3/§5 applied by shell,
# so the container driver can be developed before the Go converter exists.
step_docker() {
	step_rootfs
	if ! forced docker && [[ -f $OUT/READY-docker-rootfs ]] && docker image inspect "$TAG_DOCKER" >/dev/null 2>&1; then
		log "$TAG_DOCKER cached"; return
	fi
	need docker tar
	local ov=$OUT/docker-overlay u
	rm -rf "$ov"; mkdir -p "$ov/etc/systemd/system"
	printf '# container: no block devices to mount\n' >"$ov/etc/fstab"
	for u in networking.service ifup@.service systemd-remount-fs.service systemd-networkd-wait-online.service \
		NetworkManager-wait-online.service serial-getty@ttyS0.service getty@tty1.service; do
		ln -s /dev/null "$ov/etc/systemd/system/$u"
	done
	chmod 0755 "$ov" "$ov/etc" "$ov/etc/systemd" "$ov/etc/systemd/system"
	chmod 0644 "$ov/etc/fstab"
	local old_id; old_id=$(docker image inspect -f '{{.Id}}' "$TAG_DOCKER" 2>/dev/null || true)
	log "docker import $TAG_DOCKER"
	# One stream: the tree minus the replaced files, then only the overlay's files
	# (docker refuses archives with duplicate paths). Excludes apply to the whole
	# command line, so they name ./etc/… and the overlay members etc/… (no ./).
	local files=(etc/fstab) ex=()
	for u in "$ov"/etc/systemd/system/*; do files+=("etc/systemd/system/${u##*/}"); done
	for u in "${files[@]}"; do ex+=("--exclude=./$u"); done
	tar --numeric-owner --xattrs --xattrs-include='*' -cf - \
		-C "$OUT/rootfs-small" "${ex[@]}" . \
		-C "$ov" --owner=0 --group=0 --no-recursion "${files[@]}" |
		docker import \
			-c 'CMD ["/sbin/init"]' -c 'ENV container=docker' \
			-m "nca test rootfs (shell-adapted)" - "$TAG_DOCKER.import" >/dev/null
	# Docker 20.10 rejects STOPSIGNAL as an import change ("stopsignal is not a valid
	# change command"); a config-only legacy build adds it without a new layer.
	printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$TAG_DOCKER.import" >"$ov.Dockerfile"
	(cd "$ov" && DOCKER_BUILDKIT=0 docker build -q -t "$TAG_DOCKER" -f "$ov.Dockerfile" . >/dev/null 2>&1) ||
		die "docker build (STOPSIGNAL) failed"
	docker rmi "$TAG_DOCKER.import" >/dev/null
	rm -rf "$ov" "$ov.Dockerfile"
	# The replaced image would linger untagged; docker refuses while a container uses it.
	if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$TAG_DOCKER")" ]]; then
		docker rmi "$old_id" >/dev/null 2>&1 || true
	fi
	date -u +%FT%TZ >"$OUT/READY-docker-rootfs"
	log "$TAG_DOCKER: $(docker image inspect -f '{{.Size}}' "$TAG_DOCKER") bytes"
}

# ---------------------------------------------------------------- disks
MiB=$((1024 * 1024))

# stage NAME: a private copy of the tree for variants whose fstab/grub.cfg differ.
stage() {
	local s=$OUT/stage-$1
	rm -rf "$s"
	cp -a "$OUT/rootfs-$2" "$s"
	echo "$s"
}

# grub_i386 ROOTDIR PREFIX MODULES... -> core.img in $ROOTDIR/../core-<pid>.img.
# grub-mkimage runs from the image's own grub-pc-bin so the modules match.
grub_core() {
	local r=$1 prefix=$2; shift 2
	chroot "$r" grub-mkimage -O i386-pc -o /tmp/core.img -p "$prefix" biosdisk search search_fs_uuid normal linux configfile echo "$@"
	mv "$r/tmp/core.img" "$OUT/core.img"
}

# install_grub DISK CORE_LBA ROOTDIR: boot.img into the MBR code area, core.img at
# CORE_LBA; patch the LBA fields grub-install would patch (images.md §1 GPT note).
install_grub() {
	local disk=$1 lba=$2 r=$3
	dd if="$r/usr/lib/grub/i386-pc/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
	dd if="$OUT/core.img" of="$disk" bs=512 seek="$lba" conv=notrunc status=none
	# boot.img: kernel_sector (u64 at 0x5c) = first sector of core.img.
	printf "$(printf '%016x' "$lba" | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\\x\8\\x\7\\x\6\\x\5\\x\4\\x\3\\x\2\\x\1/')" |
		dd of="$disk" bs=1 seek=$((0x5c)) conv=notrunc status=none
	# diskboot.img (first sector of core.img): blocklist start (u64 at 0x1f4) = lba+1.
	printf "$(printf '%016x' $((lba + 1)) | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\\x\8\\x\7\\x\6\\x\5\\x\4\\x\3\\x\2\\x\1/')" |
		dd of="$disk" bs=1 seek=$((lba * 512 + 0x1f4)) conv=notrunc status=none
}

# qcow NAME: raw -> plain and zlib qcow2, raw removed.
qcow() {
	local n=$1
	qemu-img convert -O qcow2 "$OUT/$n.raw" "$OUT/$n.qcow2.tmp"
	qemu-img convert -c -o compression_type=zlib -O qcow2 "$OUT/$n.raw" "$OUT/$n-c.qcow2.tmp"
	mv "$OUT/$n.qcow2.tmp" "$OUT/$n.qcow2"
	mv "$OUT/$n-c.qcow2.tmp" "$OUT/$n-c.qcow2"
	rm -f "$OUT/$n.raw"
	log "$n.qcow2 $(stat -c %s "$OUT/$n.qcow2") bytes, $n-c.qcow2 $(stat -c %s "$OUT/$n-c.qcow2") bytes"
}

# mbr_disk FLAVOR VSIZE: one bootable ext4 partition from 1 MiB, fstab/grub by UUID.
mbr_disk() {
	local fl=$1 vsize=$2 name=debian12-$1-mbr r=$OUT/rootfs-$1 uuid part
	if done_p "$name"; then log "$name cached"; return; fi
	need sfdisk mkfs.ext4 qemu-img
	uuid=$(cat "$OUT/rootfs-$fl.uuid")
	part=$OUT/$name.part
	log "$name: mkfs.ext4 -d"
	rm -f "$OUT/$name.raw" "$part"
	truncate -s "$vsize" "$OUT/$name.raw"
	printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$OUT/$name.raw"
	local psize=$(($(stat -c %s "$OUT/$name.raw") - 2048 * 512))
	truncate -s "$psize" "$part"
	mkfs.ext4 -q -F -U "$uuid" -L rootfs -d "$r" "$part"
	dd if="$part" of="$OUT/$name.raw" bs=4M seek=$((2048 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
	rm -f "$part"
	grub_core "$r" '(hd0,msdos1)/boot/grub' part_msdos ext2
	install_grub "$OUT/$name.raw" 1 "$r"
	qcow "$name"
	stamp "$name"
}

# gpt_disk FLAVOR VSIZE: p1 BIOS boot, p2 /boot ext4 256 MiB, p3 / ext4 (root-x86-64 type).
gpt_disk() {
	local fl=$1 vsize=$2 name=debian12-$1-gpt s ruuid buuid
	if done_p "$name"; then log "$name cached"; return; fi
	need sfdisk mkfs.ext4 qemu-img
	log "$name: staging tree"
	s=$(stage gpt "$fl")
	ruuid=$(cat /proc/sys/kernel/random/uuid); buuid=$(cat /proc/sys/kernel/random/uuid)
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / ext4 errors=remount-ro 0 1\nUUID=%s /boot ext4 defaults 0 2\n' \
		"$ruuid" "$buuid" >"$s/etc/fstab"
	write_grub_cfg "$s" "$ruuid" "$buuid" ""
	rm -f "$OUT/$name.raw"
	truncate -s "$vsize" "$OUT/$name.raw"
	sfdisk -q "$OUT/$name.raw" <<-EOF
		label: gpt
		start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="bios"
		start=4096, size=$((256 * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot"
		start=$((4096 + 256 * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"
	EOF
	local json p2s p3s p3n
	json=$(sfdisk -J "$OUT/$name.raw")
	p2s=$(grep -oE '"start": *[0-9]+' <<<"$json" | sed -n 2p | grep -oE '[0-9]+$')
	p3s=$(grep -oE '"start": *[0-9]+' <<<"$json" | sed -n 3p | grep -oE '[0-9]+$')
	p3n=$(grep -oE '"size": *[0-9]+' <<<"$json" | sed -n 3p | grep -oE '[0-9]+$')
	log "$name: mkfs.ext4 -d /boot and /"
	mkdir -p "$OUT/stage-gpt-boot"
	rm -rf "$OUT/stage-gpt-boot"; mv "$s/boot" "$OUT/stage-gpt-boot"; mkdir -m 0755 "$s/boot"
	truncate -s $((256 * MiB)) "$OUT/$name.p2"
	mkfs.ext4 -q -F -U "$buuid" -L boot -d "$OUT/stage-gpt-boot" "$OUT/$name.p2"
	truncate -s $((p3n * 512)) "$OUT/$name.p3"
	mkfs.ext4 -q -F -U "$ruuid" -L rootfs -d "$s" "$OUT/$name.p3"
	dd if="$OUT/$name.p2" of="$OUT/$name.raw" bs=4M seek=$((p2s * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
	dd if="$OUT/$name.p3" of="$OUT/$name.raw" bs=4M seek=$((p3s * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
	rm -f "$OUT/$name.p2" "$OUT/$name.p3"
	grub_core "$OUT/rootfs-$fl" '(hd0,gpt2)/grub' part_gpt ext2
	install_grub "$OUT/$name.raw" 2048 "$OUT/rootfs-$fl"
	rm -rf "$s" "$OUT/stage-gpt-boot"
	qcow "$name"
	stamp "$name"
}

step_small() {
	step_rootfs
	step_docker
	mbr_disk small 2G
	gpt_disk small 2G
}

# ---------------------------------------------------------------- big
step_big_rootfs() {
	if done_p rootfs-big; then log "rootfs-big cached"; return; fi
	step_rootfs
	local r=$OUT/rootfs-big.tmp
	rm -rf "$r" "$OUT/rootfs-big"
	log "rootfs-big: copy small, apt-get install $BIG_PKGS"
	cp -a "$OUT/rootfs-small" "$r"
	# apt in the chroot needs /proc, /dev and DNS; no service may start (policy-rc.d).
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 0755 "$r/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$r/etc/resolv.conf.build"
	mv "$r/etc/resolv.conf" "$r/etc/resolv.conf.orig" 2>/dev/null || true
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	mount -t proc proc "$r/proc"
	mount --bind /dev "$r/dev"
	mount --bind /dev/pts "$r/dev/pts"
	local rc=0
	chroot "$r" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $BIG_PKGS" \
		>"$OUT/big-apt.log" 2>&1 || rc=$?
	umount "$r/dev/pts" "$r/dev" "$r/proc"
	rm -f "$r/etc/resolv.conf" "$r/etc/resolv.conf.build" "$r/usr/sbin/policy-rc.d"
	mv "$r/etc/resolv.conf.orig" "$r/etc/resolv.conf" 2>/dev/null || true
	[[ $rc == 0 ]] || { tail -n 30 "$OUT/big-apt.log" >&2; die "apt-get in big chroot failed"; }
	rm -f "$r"/etc/ssh/ssh_host_*
	: >"$r/etc/machine-id"
	chroot "$r" apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log "$r"/tmp/*
	# Same UUID scheme as small, own UUID.
	local uuid; uuid=$(cat /proc/sys/kernel/random/uuid)
	echo "$uuid" >"$OUT/rootfs-big.uuid"
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$r/etc/fstab"
	write_grub_cfg "$r" "$uuid" "$uuid" ""
	mv "$r" "$OUT/rootfs-big"
	stamp rootfs-big
	log "rootfs-big: $(du -sb "$OUT/rootfs-big" | cut -f1) bytes, $(find "$OUT/rootfs-big" | wc -l) entries"
}

step_big() {
	step_small
	step_big_rootfs
	mbr_disk big 4G
}

# ---------------------------------------------------------------- xfs
# MBR disk, XFS root. Filled through a loop device over the partition's byte range
# of the raw file under construction (rsync -aHAXS keeps hardlinks, ACLs, xattrs).
step_xfs() {
	local name=debian12-small-xfs s uuid loop mnt
	if done_p "$name"; then log "$name cached"; return; fi
	step_rootfs
	need mkfs.xfs losetup rsync sfdisk qemu-img
	s=$(stage xfs small)
	uuid=$(cat /proc/sys/kernel/random/uuid)
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / xfs defaults 0 0\n' "$uuid" >"$s/etc/fstab"
	write_grub_cfg "$s" "$uuid" "$uuid" ""
	rm -f "$OUT/$name.raw"; truncate -s 2G "$OUT/$name.raw"
	printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$OUT/$name.raw"
	mnt=$(mktemp -d)
	loop=$(losetup -f --show -o $((2048 * 512)) --sizelimit $((2 * 1024 * MiB - 2048 * 512)) "$OUT/$name.raw")
	log "$name: mkfs.xfs on $loop, rsync"
	local rc=0
	{ mkfs.xfs -q -f -m uuid="$uuid" -L rootfs "$loop" && mount "$loop" "$mnt" &&
		rsync -aHAXS --numeric-ids "$s/" "$mnt/"; } || rc=$?
	mountpoint -q "$mnt" && umount "$mnt"
	losetup -d "$loop"; rmdir "$mnt"
	[[ $rc == 0 ]] || die "xfs fill failed"
	grub_core "$s" '(hd0,msdos1)/boot/grub' part_msdos xfs
	install_grub "$OUT/$name.raw" 1 "$s"
	rm -rf "$s"
	qcow "$name"
	stamp "$name"
}

# ---------------------------------------------------------------- lvm
# RHEL-style: p1 /boot ext4 512 MiB, p2 LVM PV -> VG rootvg -> LV rootlv (ext4, /).
# No device-mapper here, so LVM metadata is written with activation disabled and the
# LV is formatted by mkfs.ext4 -d on a file then dd'ed at the LV's PV offset.
step_lvm() {
	local name=debian12-small-lvm s ruuid buuid
	if done_p "$name"; then log "$name cached"; return; fi
	step_rootfs
	need pvcreate vgcreate lvcreate losetup sfdisk qemu-img mkfs.ext4
	s=$(stage lvm small)
	ruuid=$(cat /proc/sys/kernel/random/uuid); buuid=$(cat /proc/sys/kernel/random/uuid)
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/mapper/rootvg-rootlv / ext4 defaults 0 1\nUUID=%s /boot ext4 defaults 0 2\n' \
		"$buuid" >"$s/etc/fstab"
	write_grub_cfg "$s" "$ruuid" "$buuid" ""
	sed -i "s|root=UUID=$ruuid|root=/dev/mapper/rootvg-rootlv rd.lvm.lv=rootvg/rootlv|" "$s/boot/grub/grub.cfg"
	local raw=$OUT/$name.raw
	rm -f "$raw"; truncate -s 3G "$raw"
	sfdisk -q "$raw" <<-EOF
		label: dos
		start=2048, size=$((512 * 2048)), type=83, bootable
		start=$((2048 + 512 * 2048)), type=8e
	EOF
	local p2s=$((2048 + 512 * 2048)) p2n
	p2n=$(($(stat -c %s "$raw") / 512 - p2s))
	# Private LVM config: no activation, no udev, no backups, no host devices touched.
	local lvmdir; lvmdir=$(mktemp -d)
	cat >"$lvmdir/lvm.conf" <<-'EOF'
		global { activation = 0 use_lvmetad = 0 locking_type = 0 }
		activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
		backup { backup = 0 archive = 0 }
		devices { obtain_device_list_from_udev = 0 }
	EOF
	local loop rc=0 pe_start seg extent
	loop=$(losetup -f --show -o $((p2s * 512)) --sizelimit $((p2n * 512)) "$raw")
	log "$name: LVM metadata on $loop (activation off)"
	{
		export LVM_SYSTEM_DIR=$lvmdir
		pvcreate -q -ff -y --devices "$loop" "$loop" &&
			vgcreate -q --devices "$loop" rootvg "$loop" &&
			lvcreate -q --devices "$loop" -an -Zn -Wn -l 100%FREE -n rootlv rootvg &&
			pe_start=$(pvs --devices "$loop" --noheadings --units b --nosuffix -o pe_start "$loop" | tr -d ' ') &&
			seg=$(lvs --devices "$loop" --noheadings -o seg_pe_ranges rootvg/rootlv | tr -d ' ') &&
			extent=$(vgs --devices "$loop" --noheadings --units b --nosuffix -o vg_extent_size rootvg | tr -d ' ')
	} >"$OUT/lvm.log" 2>&1 || rc=$?
	losetup -d "$loop"; rm -rf "$lvmdir"
	[[ $rc == 0 ]] || { cat "$OUT/lvm.log" >&2; die "lvm metadata failed"; }
	# seg like /dev/loop3:0-759 : linear, one segment.
	local pe0=${seg##*:}; pe0=${pe0%-*}; local pe1=${seg##*-}
	local lvoff=$((p2s * 512 + pe_start + pe0 * extent)) lvsize=$(((pe1 - pe0 + 1) * extent))
	log "$name: LV at byte $lvoff, $lvsize bytes (pe_start $pe_start, seg $seg)"
	echo "lv_offset=$lvoff lv_size=$lvsize" >"$OUT/$name.layout"
	mkdir -p "$OUT/stage-lvm-boot"; rm -rf "$OUT/stage-lvm-boot"; mv "$s/boot" "$OUT/stage-lvm-boot"; mkdir -m 0755 "$s/boot"
	truncate -s $((512 * MiB)) "$OUT/$name.p1"
	mkfs.ext4 -q -F -U "$buuid" -L boot -d "$OUT/stage-lvm-boot" "$OUT/$name.p1"
	truncate -s "$lvsize" "$OUT/$name.lv"
	mkfs.ext4 -q -F -U "$ruuid" -L rootfs -d "$s" "$OUT/$name.lv"
	dd if="$OUT/$name.p1" of="$raw" bs=4M seek=$((2048 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
	dd if="$OUT/$name.lv" of="$raw" bs=4M seek="$lvoff" oflag=seek_bytes conv=notrunc,sparse status=none
	rm -f "$OUT/$name.p1" "$OUT/$name.lv"
	grub_core "$OUT/rootfs-small" '(hd0,msdos1)/grub' part_msdos ext2
	install_grub "$raw" 1 "$OUT/rootfs-small"
	rm -rf "$s" "$OUT/stage-lvm-boot"
	qcow "$name"
	stamp "$name"
}

step_sizes() {
	local f
	printf '%-34s %14s %14s\n' file bytes virtual >&2
	for f in "$OUT"/*.qcow2; do
		[[ -e $f ]] || continue
		printf '%-34s %14s %14s\n' "$(basename "$f")" "$(stat -c %s "$f")" \
			"$(qemu-img info --output=json "$f" | grep -oE '"virtual-size": *[0-9]+' | grep -oE '[0-9]+$')" >&2
	done
	for f in small big; do
		[[ -d $OUT/rootfs-$f ]] && printf '%-34s %14s (du -sb)\n' "rootfs-$f" "$(du -sb "$OUT/rootfs-$f" | cut -f1)" >&2
	done
	if docker image inspect "$TAG_DOCKER" >/dev/null 2>&1; then
		printf '%-34s %14s\n' "$TAG_DOCKER" "$(docker image inspect -f '{{.Size}}' "$TAG_DOCKER")" >&2
	fi
}

main() {
	[[ $# -gt 0 ]] || set -- small
	[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot)"
	mkdir -p "$OUT"
	# One builder at a time: teammates may start this concurrently.
	exec 9>"$OUT/.build.lock"
	flock 9
	local s
	for s in "$@"; do
		case $s in
		rootfs) step_rootfs ;;
		docker) step_docker ;;
		small) step_small ;;
		big) step_big ;;
		xfs) step_xfs ;;
		lvm) step_lvm ;;
		all) step_small; step_big; step_xfs; step_lvm ;;
		sizes) ;;
		*) die "unknown step $s (rootfs docker small big xfs lvm all sizes)" ;;
		esac
	done
	step_sizes
}

# exit on the same line: edits to this file while it runs cannot be executed.
main "$@"; exit
