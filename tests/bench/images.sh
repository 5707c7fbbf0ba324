#!/bin/bash
# images.sh — qcow2 → runnable Docker image, three ways, side by side:
#   ours  images.Convert streamed into the Engine API (tests/bench/imgconvert,
#         the code path of `nova-container-agent image convert`); no root needed
#         on the read side, no temp files, no mount.
#   ours/Ensure  the same through store.Ensure, FILE standing in for the Glance
#         download: spool file + sha512 verification + holdback (what the agent does).
#   ours@REV  with BASE_REV=<commit>: the same convert+import built from that
#         commit (git archive, nothing checked out), right after ours, so a change
#         is measured against its parent in one run, under the same load.
#   (a)   baseline of images.md §3: qemu-img convert -O raw, losetup -o (partition
#         offset), mount -o ro, tar --xattrs | docker import.
#   (b)   docker import of a ready tar of the same tree (the rootfs the disk was
#         built from): the floor set by dockerd's untar alone.
#   (b')  the same without /boot and /usr/lib/modules, which our converter leaves
#         out of the layer (images.md §5): the floor for what ours produces.
# Each stage runs under /usr/bin/time: wall, peak RSS and CPU of the client side,
# plus dockerd's CPU (its untar runs in dockerd or a re-exec'ed child) from
# /proc/<dockerd>/stat. Page cache is dropped before each stage (DROP_CACHES=0
# to skip). ENSURE=0 leaves out the ours/Ensure row.
#
# usage: tests/bench/images.sh [small|big|all] (default: every image built)
# needs: root, tests/images/build.sh small [big], docker, qemu-img, losetup.
set -euo pipefail

OUT=${NCA_IMAGES_DIR:-/var/cache/nca/images}
DROP_CACHES=${DROP_CACHES:-1}
BASE_REV=${BASE_REV:-}
ENSURE=${ENSURE:-1}
WORK=${BENCH_WORK:-/var/tmp/nca-bench-images}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TICK=$(getconf CLK_TCK)

die() { echo "images.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (losetup/mount for the baseline, drop_caches)"
for c in docker qemu-img losetup sfdisk /usr/bin/time go; do command -v "$c" >/dev/null || die "missing $c"; done

flavors=()
case ${1:-all} in
small) flavors=(small) ;;
big) flavors=(big) ;;
all) flavors=(small big) ;;
*) die "usage: $0 [small|big|all]" ;;
esac

mkdir -p "$WORK"
MNT=$WORK/mnt
mkdir -p "$MNT"
LOOP=""
cleanup() {
	mountpoint -q "$MNT" && umount "$MNT"
	[[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null
	rm -f "$WORK"/disk.raw
	docker images --format '{{.Repository}}:{{.Tag}}' | grep '^nca-bench/' | xargs -r docker rmi >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "building tests/bench/imgconvert" >&2
(cd "$ROOT" && go build -o "$WORK/imgconvert" ./tests/bench/imgconvert)
if [[ -n $BASE_REV ]]; then
	echo "building tests/bench/imgconvert at $BASE_REV" >&2
	rm -rf "$WORK/base-src" && mkdir -p "$WORK/base-src"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$WORK/base-src"
	(cd "$WORK/base-src" && go build -o "$WORK/imgconvert-base" ./tests/bench/imgconvert)
	rm -rf "$WORK/base-src"
fi

dockerd_ticks() {
	local pid; pid=$(pidof dockerd | awk '{print $1}')
	# utime stime cutime cstime: fields 14-17 (comm has no spaces for dockerd).
	awk '{print $14+$15+$16+$17}' "/proc/$pid/stat"
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
# measure IMAGE METHOD STAGE TAG -- CMD...: one row in $RESULTS.
measure() {
	local img=$1 method=$2 stage=$3 tag=$4; shift 5
	[[ $DROP_CACHES == 1 ]] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
	local d0 d1 tf=$WORK/time.out size=0
	d0=$(dockerd_ticks)
	if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$WORK/stage.log" 2>&1; then
		cat "$WORK/stage.log" >&2
		echo "$img $method $stage FAILED" >&2
		printf '%s\t%s\t%s\tFAILED\t-\t-\t-\t-\n' "$img" "$method" "$stage" >>"$RESULTS"
		return 1
	fi
	d1=$(dockerd_ticks)
	[[ -n $tag ]] && size=$(docker image inspect -f '{{.Size}}' "$tag")
	read -r wall rss usr sys < <(tail -n1 "$tf")
	printf '%s\t%s\t%s\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\n' "$img" "$method" "$stage" "$wall" "$((rss / 1024))" \
		"$(echo "$usr + $sys" | bc)" "$(echo "($d1 - $d0) / $TICK" | bc -l)" "$((size / 1000000))" >>"$RESULTS"
}

# largest partition of a raw disk: "start_bytes size_bytes"
root_part() {
	sfdisk -J "$1" | python3 -c 'import json,sys
t=json.load(sys.stdin)["partitiontable"]; ss=t.get("sectorsize",512)
p=max(t["partitions"], key=lambda p: p["size"]); print(p["start"]*ss, p["size"]*ss)'
}

for fl in "${flavors[@]}"; do
	[[ -f $OUT/debian12-$fl-mbr.stamp ]] || { echo "skip $fl: run tests/images/build.sh $fl" >&2; continue; }
	tree=$OUT/rootfs-$fl
	[[ -d $tree ]] || die "$tree missing"
	echo "preparing ready tar of $tree (not timed)" >&2
	tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -cf "$WORK/tree-$fl.tar" .
	tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' --exclude='./boot/*' --exclude='./usr/lib/modules/*' \
		-cf "$WORK/slim-$fl.tar" .
	for v in "" -c; do
		name=debian12-$fl-mbr$v
		q=$OUT/$name.qcow2
		echo "== $name" >&2
		measure "$name" ours reader-only "" -- "$WORK/imgconvert" -null "$q" || true
		measure "$name" ours "convert+import" "nca-bench/ours:$name" -- "$WORK/imgconvert" "$q" "nca-bench/ours:$name" || true
		docker rmi "nca-bench/ours:$name" >/dev/null 2>&1 || true
		if [[ -n $BASE_REV ]]; then
			measure "$name" "ours@$BASE_REV" "convert+import" "nca-bench/base:$name" -- "$WORK/imgconvert-base" "$q" "nca-bench/base:$name" || true
			docker rmi "nca-bench/base:$name" >/dev/null 2>&1 || true
		fi
		if [[ $ENSURE == 1 ]]; then
			sum=$(sha512sum "$q" | cut -d' ' -f1) # Glance's job, not timed
			eid=00000000-0000-4000-8000-0000000000$(printf %02d $RANDOM | cut -c1-2)
			measure "$name" "ours/Ensure" "spool+verify+imp" "nca-bench/$eid:$sum" -- env SPOOL_DIR="$WORK" "$WORK/imgconvert" -ensure "$sum" -prefix nca-bench "$q" "$eid" || true
			docker rmi "nca-bench/$eid:$sum" >/dev/null 2>&1 || true
		fi

		measure "$name" "(a) loop" "qemu-img convert" "" -- qemu-img convert -O raw "$q" "$WORK/disk.raw"
		read -r off sz < <(root_part "$WORK/disk.raw")
		LOOP=$(losetup -r -o "$off" --sizelimit "$sz" -f --show "$WORK/disk.raw")
		mount -o ro "$LOOP" "$MNT"
		measure "$name" "(a) loop" "tar|import" "nca-bench/loop:$name" -- bash -c \
			"tar -C '$MNT' --numeric-owner --xattrs --xattrs-include='*' -cf - . | docker import - nca-bench/loop:$name" || true
		umount "$MNT"; losetup -d "$LOOP"; LOOP=""
		rm -f "$WORK/disk.raw"
		docker rmi "nca-bench/loop:$name" >/dev/null 2>&1 || true

		measure "$name" "(b) ready tar" "docker import" "nca-bench/tar:$name" -- docker import "$WORK/tree-$fl.tar" "nca-bench/tar:$name" || true
		docker rmi "nca-bench/tar:$name" >/dev/null 2>&1 || true
		measure "$name" "(b') slim tar" "docker import" "nca-bench/slim:$name" -- docker import "$WORK/slim-$fl.tar" "nca-bench/slim:$name" || true
		docker rmi "nca-bench/slim:$name" >/dev/null 2>&1 || true
	done
	rm -f "$WORK/tree-$fl.tar" "$WORK/slim-$fl.tar"
done

echo
echo "qcow2 → runnable Docker image ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), drop_caches=$DROP_CACHES)"
printf '%-22s %-14s %-16s %8s %9s %9s %10s %9s\n' image method stage wall_s peakRSS_MB cpu_s dockerd_s image_MB
sort -s -k1,1 "$RESULTS" | awk -F'\t' '{printf "%-22s %-14s %-16s %8s %9s %9s %10s %9s\n",$1,$2,$3,$4,$5,$6,$7,$8}'
echo
echo "totals (qcow2 file → tagged image; ours = convert+import, (a) = qemu-img + tar|import, (b)/(b') = import only)"
awk -F'\t' '$3!="reader-only" && $4!="FAILED" {w[$1" "$2]+=$4; c[$1" "$2]+=$6+$7; if ($5>r[$1" "$2]) r[$1" "$2]=$5}
	END {for (k in w) printf "%-38s wall %7.2f s   cpu(client+dockerd) %7.2f s   peakRSS %5d MB\n", k, w[k], c[k], r[k]}' "$RESULTS" | sort
echo
echo "goals: ours ≥ 2× faster than (a), ≤ 1.3× (b) (and (b'), the floor for the slim layer ours writes)"
awk -F'\t' '$3!="reader-only" && $4!="FAILED" {w[$1" "$2]+=$4; imgs[$1]=1}
	END {for (i in imgs) { o=w[i" ours"]; if (!o) continue;
		printf "%-22s ours %7.2f s   (a)/ours %5.2f×   ours/(b) %5.2f   ours/(b'"'"') %5.2f\n", i, o,
			w[i" (a) loop"]/o, o/w[i" (b) ready tar"], o/w[i" (b'"'"') slim tar"] }}' "$RESULTS" | sort
