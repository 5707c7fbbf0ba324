#!/usr/bin/env bash
# Builds the XFS test images of this directory (root: the tree is filled through a loop mount,
# which is how test data gets every feature a real system leaves on disk; the reader itself never
# mounts). For each variant NAME it writes NAME.img.gz and NAME.tar.gz, the GNU tar of the mounted
# tree (--numeric-owner --xattrs --xattrs-include='*'), which the tests compare the reader with.
#   v5:       mkfs.xfs defaults (crc, ftype, sparse inodes, bigtime, 4 KiB blocks, 512-byte inodes)
#   v5-1k:    1 KiB blocks, 8 KiB directory blocks, large extent counts (nrext64)
#   fuzz:     a 16 MiB v5 filesystem with one of each structure (no tar), the fuzz seed
#   v4:       a v4 filesystem (no CRCs; this kernel cannot mount it), made by mkfs.xfs -p from a
#             protofile of a tree (directories of every form, files, symlinks, devices, setuid);
#             v4.tar.gz is GNU tar of that tree (mkfs sets every mtime, and has no xattrs or
#             hard links); a few attributes are then added with xfs_db attr_set
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD
export TEST_DEV=1 TEST_DIR=1 QA_CHECK_FS=1 # let mkfs.xfs make a filesystem under 300 MB

# fill_small makes one of each on-disk structure, small enough to walk thousands of times.
fill_small() {
	cd "$1"
	mkdir -p etc d5 d40 d200
	printf 'ID=rocky\n' >etc/os-release
	for i in $(seq 1 5); do echo "$i" >"d5/f$i"; done
	for i in $(seq 1 40); do : >"d40/file-$i"; done
	for i in $(seq 1 200); do : >"d200/a-longer-file-name-$i"; done
	for i in $(seq 0 30); do xfs_io -f -c "pwrite -S 1 $((i * 8192)) 4096" fragmented >/dev/null; done
	xfs_io -f -c "falloc 0 65536" -c "pwrite -S 0x63 10000 5000" prealloc >/dev/null
	ln -s "/$(printf 'very-long-directory-name-%02d/' $(seq 1 30))target" longlink
	mknod chardev c 4 5
	setfattr -n user.short -v hello d5/f1
	setfattr -n user.big -v "$(seq -s, 1 1500)" d5/f2
	for i in $(seq 1 30); do setfattr -n "user.leaf-$i" -v "value-$i" d40; done
	setfacl -m u:1234:rw d5/f3
	cd /
}

fill() {
	local m=$1 i
	cd "$m"
	mkdir -p etc d5 d40 d200 d5000 attrs
	printf 'ID=rocky\nVERSION_ID="9.4"\n' >etc/os-release
	for i in $(seq 1 5); do echo "$i" >"d5/f$i"; done
	for i in $(seq 1 40); do echo "$i" >"d40/file-$i"; done
	for i in $(seq 1 200); do echo "$i" >"d200/a-longer-file-name-$i"; done
	for i in $(seq 1 5000); do : >"d5000/entry-number-$i"; done
	rm d5000/entry-number-{100..199} # free space inside data blocks
	echo small >small
	seq 1 60000 >random
	# Sparse: a hole, 4 KiB of data, a hole, data at the end.
	xfs_io -f -c "pwrite -S 0x61 65536 4096" -c "pwrite -S 0x62 1048576 100" sparse >/dev/null
	# Fragmented into a B+tree extent map: 200 separate 4 KiB extents with holes between.
	for i in $(seq 0 199); do xfs_io -f -c "pwrite -S $((i % 250 + 1)) $((i * 8192)) 4096" fragmented >/dev/null; done
	# Unwritten (fallocated) ranges around written data, and preallocation past EOF.
	xfs_io -f -c "falloc 0 262144" -c "pwrite -S 0x63 100000 5000" -c "falloc -k 262144 65536" prealloc >/dev/null
	ln -s small shortlink
	ln -s "/$(printf 'very-long-directory-name-%02d/' $(seq 1 30))target" longlink
	ln random hardlink
	mkfifo fifo
	mknod chardev c 4 5
	mknod blockdev b 259 70000
	chown 1000:1001 small
	chmod 4755 random
	touch -d '2038-06-01 12:34:56.123456789' small   # past 2038: bigtime
	touch -h -d '1999-12-31 23:59:59.5' shortlink
	setfattr -n user.short -v hello small
	setfattr -n trusted.note -v t small
	seq -s, 1 2000 >/tmp/xfs-big-value
	setfattr -n user.big -v "$(cat /tmp/xfs-big-value)" random
	rm /tmp/xfs-big-value
	for i in $(seq 1 30); do setfattr -n "user.leaf-$i" -v "value-$i" attrs; done
	: >attrs/node
	for i in $(seq 1 400); do setfattr -n "user.node-attribute-number-$i" -v "value-$i-$(printf '%040d' "$i")" attrs/node; done
	setfacl -m u:1234:rw,g:2345:r small
	setfacl -d -m u:1234:rwx,o::- d5
	setcap cap_net_raw+ep random
	cd /
}

make_variant() {
	local name=$1 size=$2 filler=fill; shift 2
	if [[ $name == fuzz ]]; then filler=fill_small; fi
	local img="/tmp/xfs-$name.img" mnt
	rm -f "$img"
	mkfs.xfs -q -f -L testvol "$@" -d file,name="$img",size="$size"
	mnt=$(mktemp -d)
	mount -o loop "$img" "$mnt"
	"$filler" "$mnt" || { umount "$mnt"; exit 1; }
	[[ $name == fuzz ]] || tar --numeric-owner --xattrs --xattrs-include='*' -C "$mnt" -cf - . | gzip -9n >"$out/$name.tar.gz"
	umount "$mnt"
	rmdir "$mnt"
	gzip -9n <"$img" >"$out/$name.img.gz"
	rm -f "$img"
}

# protofile writes a mkfs.xfs protofile for the tree in $1 (depth-first, as the format nests).
protofile() {
	local dir=$1
	proto_dir() {
		local d=$1 e name mode typ perm uid gid
		for e in "$d"/* ; do
			[[ -e $e || -L $e ]] || continue
			name=${e##*/}
			read -r mode uid gid < <(stat -c '%f %u %g' "$e")
			mode=$((16#$mode))
			perm=$(printf '%03o' $((mode & 0777)))
			local s=- g=-
			((mode & 04000)) && s=u
			((mode & 02000)) && g=g
			case $((mode & 0170000)) in
			$((0040000))) echo "$name d$s$g$perm $uid $gid"; proto_dir "$e"; echo '$' ;;
			$((0100000))) echo "$name -$s$g$perm $uid $gid $e" ;;
			$((0120000))) echo "$name l$s$g$perm $uid $gid $(readlink "$e")" ;;
			$((0020000))) echo "$name c$s$g$perm $uid $gid $(stat -c '%Hr %Lr' "$e")" ;;
			$((0060000))) echo "$name b$s$g$perm $uid $gid $(stat -c '%Hr %Lr' "$e")" ;;
			$((0010000))) echo "$name p$s$g$perm $uid $gid" ;;
			esac
		done
	}
	printf '/dev/null\n0 0\nd--755 0 0\n'
	proto_dir "$dir"
	echo '$'
}

make_v4() {
	local src img
	src=$(mktemp -d)
	img=/tmp/xfs-v4.img
	mkdir -p "$src"/{etc,d5,d40,d200,d5000}
	printf 'ID=centos\nVERSION_ID="7"\n' >"$src/etc/os-release"
	for i in $(seq 1 5); do echo "$i" >"$src/d5/f$i"; done
	for i in $(seq 1 40); do echo "$i" >"$src/d40/file-$i"; done
	for i in $(seq 1 200); do echo "$i" >"$src/d200/a-longer-file-name-$i"; done
	for i in $(seq 1 5000); do : >"$src/d5000/entry-number-$i"; done
	seq 1 60000 >"$src/random"
	chmod 4755 "$src/random"
	echo small >"$src/small"
	chown 1000:1001 "$src/small"
	ln -s small "$src/shortlink"
	ln -s "/$(printf 'very-long-directory-name-%02d/' $(seq 1 30))target" "$src/longlink"
	mknod "$src/chardev" c 4 5
	mknod "$src/blockdev" b 259 70000
	mkfifo "$src/fifo"
	protofile "$src" >/tmp/xfs-v4.proto
	rm -f "$img"
	mkfs.xfs -q -f -L testvol -m crc=0 -p /tmp/xfs-v4.proto -d file,name="$img",size=48m 2>/dev/null
	# Attributes through xfs_db (protofiles have none): short-form, leaf, and a remote value.
	local args=(-x -c "path /small" -c "attr_set -u short -v 5" -c "attr_set -r note -v 1"
		-c "path /random" -c "attr_set -u big -v 9000" -c "path /d40")
	for i in $(seq 1 30); do args+=(-c "attr_set -u leaf-$i -v 7"); done
	xfs_db "${args[@]}" "$img" >/dev/null
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$src" -cf - . | gzip -9n >"$out/v4.tar.gz"
	gzip -9n <"$img" >"$out/v4.img.gz"
	rm -rf "$src" "$img" /tmp/xfs-v4.proto
}

if [[ ${1:-} == v4 ]]; then make_v4; exit; fi
[[ ${1:-} == fuzz ]] || make_v4
[[ ${1:-} == fuzz ]] || make_variant v5 48m
[[ ${1:-} == fuzz ]] || make_variant v5-1k 48m -b size=1024 -n size=8192 -i nrext64=1
make_variant fuzz 16m
ls -la "$out"
