#!/usr/bin/env bash
# Regenerates the LVM2 physical volumes the tests read, with the real lvm2 tools (run as root:
# loop devices). Nothing is activated: a private LVM_SYSTEM_DIR turns activation, udev, locking
# and backups off, so this works without device-mapper and touches no host volume.
#
# Each LV's extents are then stamped, through the byte offsets the lvm tools report (pvs
# pe_start, lvs seg_pe_ranges), with "<lv>:<logical extent>" so the tests can check the Go
# extent mapping against LVM's own. <name>.layout records those tool answers.
#
#   debian.pv   whole-device PV with two metadata areas: VG debian-vg, LVs root (two segments,
#               interleaved with swap_1) and swap_1, extent size 1 MiB
#   span1.pv,   VG rootvg over two PVs; LV root starts on span1 and continues on span2
#   span2.pv
#   wrap.pv     a 60 KiB metadata area rewritten until the committed text wraps around the end
#               of the circular buffer
set -euo pipefail
cd "$(dirname "$0")"
[[ $(id -u) == 0 ]] || { echo "run as root (loop devices)" >&2; exit 1; }
work=$(mktemp -d)
loops=()
cleanup() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export LVM_SYSTEM_DIR=$work/conf
mkdir -p "$LVM_SYSTEM_DIR"
cat >"$LVM_SYSTEM_DIR/lvm.conf" <<'CONF'
global { activation = 0 use_lvmetad = 0 locking_type = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
devices { obtain_device_list_from_udev = 0 }
CONF
# lvm complains about inherited descriptors and the disabled activation on every call.
lvmq() { "$@" 3>&- 4>&- 2> >(grep -vE 'leaked|WARNING' >&2); }

# attach FILE: sets $l to a new loop device over FILE (not in a subshell, so cleanup sees it).
attach() { l=$(losetup -f --show "$1"); loops+=("$l"); }

# stamp FILE LOOPDEVS... : writes "<lv>:<le>" at the start of each extent of each LV of the VG
# (one stamp per extent, 16 bytes, NUL padded) and appends the tool answers to FILE.layout.
stamp() {
	local vg=$1 devs=$2; shift 2
	local extent; extent=$(lvmq vgs --devices "$devs" --noheadings --units b --nosuffix -o vg_extent_size "$vg" | tr -d ' ')
	echo "extent_size $extent"
	lvmq lvs --devices "$devs" --noheadings --separator ' ' -o lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges "$vg" |
		while read -r lv segstart segsize ranges; do
			local dev=${ranges%%:*} r=${ranges#*:}; local pe0=${r%-*}
			local pestart file
			pestart=$(lvmq pvs --devices "$devs" --noheadings --units b --nosuffix -o pe_start "$dev" | tr -d ' ')
			file=$(losetup -nO BACK-FILE "$dev")
			echo "segment $lv $segstart $segsize $(basename "$file") $pe0 $pestart"
			for ((i = 0; i < segsize; i++)); do
				printf '%-16s' "$lv:$((segstart + i))" | tr ' ' '\0' |
					dd of="$file" bs=1 seek=$((pestart + (pe0 + i) * extent)) conv=notrunc status=none
			done
		done
}

# debian.pv
truncate -s 64M "$work/debian.pv"
attach "$work/debian.pv"
lvmq pvcreate -q -ff -y --pvmetadatacopies 2 --devices "$l" "$l"
lvmq vgcreate -q -s 1m --devices "$l" debian-vg "$l"
lvmq lvcreate -q --devices "$l" -an -Zn -Wn -l 8 -n root debian-vg
lvmq lvcreate -q --devices "$l" -an -Zn -Wn -l 4 -n swap_1 debian-vg
lvmq lvextend -q --devices "$l" -l +16 debian-vg/root
lvmq lvchange -q --devices "$l" --addtag boot-me debian-vg/root
stamp debian-vg "$l" >debian.layout

# span1.pv + span2.pv
truncate -s 16M "$work/span1.pv" "$work/span2.pv"
attach "$work/span1.pv"; l1=$l; attach "$work/span2.pv"; l2=$l
lvmq pvcreate -q -ff -y --devices "$l1,$l2" "$l1" "$l2"
lvmq vgcreate -q -s 1m --devices "$l1,$l2" rootvg "$l1" "$l2"
lvmq lvcreate -q --devices "$l1,$l2" -an -Zn -Wn -l 20 -n root rootvg "$l1" "$l2"
stamp rootvg "$l1,$l2" >span.layout
lvmq pvs --devices "$l1,$l2" --noheadings -o pv_name,pv_uuid | sed "s|$l1|span1.pv|;s|$l2|span2.pv|" >>span.layout

# wrap.pv
truncate -s 8M "$work/wrap.pv"
attach "$work/wrap.pv"
lvmq pvcreate -q -ff -y --metadatasize 16k --dataalignment 64k --devices "$l" "$l"
lvmq vgcreate -q -s 1m --devices "$l" wrapvg "$l"
lvmq lvcreate -q --devices "$l" -an -Zn -Wn -l 2 -n lv wrapvg
wrapped=
for i in $(seq 1 300); do
	lvmq lvchange -q --devices "$l" --addtag "tag$i" wrapvg/lv >/dev/null
	# mda header at 4096: size@32, raw_locn[0] offset@40 size@48
	read -r size off len <<<"$(od -An -t u8 -j $((4096 + 32)) -N 24 "$work/wrap.pv" | tr "\n" " ")"
	if ((off + len > size)); then wrapped=$i; break; fi
done
[[ -n $wrapped ]] || { echo "metadata never wrapped" >&2; exit 1; }
stamp wrapvg "$l" >wrap.layout
echo "wrapped_after $wrapped" >>wrap.layout

for l in "${loops[@]}"; do losetup -d "$l"; done; loops=()
for f in debian span1 span2 wrap; do gzip -9n <"$work/$f.pv" >"$f.pv.gz"; done
ls -l ./*.gz ./*.layout
