package snapshot

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/images/disk"
)

func superblockBytes(features [3]uint32, label string) []byte {
	sb := make([]byte, 1024)
	le := binary.LittleEndian
	le.PutUint16(sb[0x38:], 0xEF53)
	le.PutUint32(sb[0x18:], 2) // 4 KiB
	le.PutUint32(sb[0x4C:], 1)
	le.PutUint16(sb[0x58:], 256)
	le.PutUint32(sb[0x5C:], features[0])
	le.PutUint32(sb[0x60:], features[1])
	le.PutUint32(sb[0x64:], features[2])
	id := uuid.MustParse("6c3b5a3e-58f0-4a37-9d1e-2f6f1c0c9b10")
	copy(sb[0x68:], id[:])
	copy(sb[0x78:], label)
	return sb
}

func TestParseSuperblock(t *testing.T) {
	// bookworm mke2fs defaults + needs_recovery (a snapshot of a mounted fs) + an unknown bit
	sb := superblockBytes([3]uint32{0x4 | 0x8 | 0x10 | 0x20, 0x2 | 0x4 | 0x40 | 0x80 | 0x200 | 0x80000000, 0x1 | 0x2 | 0x8 | 0x20 | 0x40 | 0x400}, "rootfs")
	s, err := ParseSuperblock(sb)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "extent", "64bit", "flex_bg",
		"sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"}
	if !slices.Equal(s.Features, want) {
		t.Errorf("features %v\nwant %v", s.Features, want)
	}
	if !slices.Equal(s.Dropped, []string{"needs_recovery", "unknown-1-0x80000000"}) {
		t.Errorf("dropped %v", s.Dropped)
	}
	if s.UUID != "6c3b5a3e-58f0-4a37-9d1e-2f6f1c0c9b10" || s.Label != "rootfs" || s.BlockSize != 4096 || s.InodeSize != 256 {
		t.Errorf("%+v", s)
	}
	if _, err := ParseSuperblock(make([]byte, 1024)); err == nil {
		t.Error("no magic accepted")
	}
	bad := superblockBytes([3]uint32{}, "")
	binary.LittleEndian.PutUint32(bad[0x18:], 40)
	if _, err := ParseSuperblock(bad); err == nil {
		t.Error("absurd block size accepted")
	}
}

func TestNeedFor(t *testing.T) {
	small := NeedFor(Stats{Files: 10, Dirs: 3}, 4096, 256)
	big := NeedFor(Stats{Files: 16000, Dirs: 1500, Symlinks: 800, Blocks4K: 680 << 8}, 4096, 256)
	if small.Bytes%mib != 0 || big.Bytes%mib != 0 {
		t.Error("not MiB aligned")
	}
	if big.Bytes <= 680*mib*115/100 || big.Bytes > 2*gib {
		t.Errorf("680 MiB of data -> %d MiB", big.Bytes>>20)
	}
	if big.Inodes < 18300 || small.Bytes >= big.Bytes {
		t.Errorf("inodes %d, small %d big %d", big.Inodes, small.Bytes, big.Bytes)
	}
}

func TestPlanLayout(t *testing.T) {
	mbr := &Original{VirtualSize: 2 * gib, Table: disk.TableMBR,
		Partitions: []disk.Partition{{Number: 1, Start: mib, Size: 2*gib - mib}}}
	mbr.Root = mbr.Partitions[0]
	gpt := &Original{VirtualSize: 2 * gib, Table: disk.TableGPT, Partitions: []disk.Partition{
		{Number: 1, Start: mib, Size: mib, Role: disk.RoleBIOSBoot},
		{Number: 2, Start: 2 * mib, Size: 256 * mib, Role: disk.RoleBoot},
		{Number: 3, Start: 258 * mib, Size: 2*gib - 258*mib - gptTail}}}
	gpt.Root = gpt.Partitions[2]
	squeezed := &Original{VirtualSize: 2 * gib, Table: disk.TableMBR, Partitions: []disk.Partition{
		{Number: 1, Start: mib, Size: gib}, {Number: 2, Start: gib + mib, Size: gib - mib, Role: disk.RoleSwap}}}
	squeezed.Root = squeezed.Partitions[0]
	logical := &Original{VirtualSize: 2 * gib, Table: disk.TableMBR, Partitions: []disk.Partition{
		{Number: 1, Start: mib, Size: 2*gib - mib, Role: disk.RoleExtended}, {Number: 5, Start: 2 * mib, Size: 2*gib - 2*mib}}}
	logical.Root = logical.Partitions[1]

	cases := []struct {
		name    string
		orig    *Original
		need    int64
		minDisk int64
		want    Layout
	}{
		{"mbr fits", mbr, gib, 0, Layout{Mode: LayoutOriginal, DiskSize: 2 * gib, RootNum: 1, RootStart: mib, RootSize: 2*gib - mib,
			CopyHead: mib, TailStart: 2 * gib, TailEnd: 2 * gib}},
		{"mbr grows", mbr, 3 * gib, 0, Layout{Mode: LayoutOriginal, DiskSize: 3*gib + mib, RootNum: 1, RootStart: mib,
			RootSize: 3 * gib, CopyHead: mib, Grow: true}},
		{"mbr flavor", mbr, gib, 10 * gib, Layout{Mode: LayoutOriginal, DiskSize: 10 * gib, RootNum: 1, RootStart: mib,
			RootSize: 10*gib - mib, CopyHead: mib, Grow: true}},
		{"gpt fits", gpt, gib, 0, Layout{Mode: LayoutOriginal, DiskSize: 2 * gib, RootNum: 3, RootStart: 258 * mib,
			RootSize: 2*gib - 258*mib - gptTail, CopyHead: 258 * mib, TailStart: 2*gib - gptTail, TailEnd: 2 * gib, GPT: true}},
		{"gpt grows", gpt, 3 * gib, 0, Layout{Mode: LayoutOriginal, DiskSize: 258*mib + 3*gib + mib, RootNum: 3, RootStart: 258 * mib,
			RootSize: 3*gib + mib - gptTail, CopyHead: 258 * mib, Grow: true, GPT: true}},
		{"squeezed fits", squeezed, gib / 2, 0, Layout{Mode: LayoutOriginal, DiskSize: 2 * gib, RootNum: 1, RootStart: mib,
			RootSize: gib, CopyHead: mib, TailStart: gib + mib, TailEnd: 2 * gib}},
		{"squeezed too big", squeezed, 3 * gib / 2, 0, Layout{Mode: LayoutFresh, DiskSize: 3*gib/2 + mib, RootNum: 1, RootStart: mib, RootSize: 3 * gib / 2}},
		{"logical too big", logical, 3 * gib, 0, Layout{Mode: LayoutFresh, DiskSize: 3*gib + mib, RootNum: 1, RootStart: mib, RootSize: 3 * gib}},
		{"no original", nil, gib, 0, Layout{Mode: LayoutFresh, DiskSize: gib + mib, RootNum: 1, RootStart: mib, RootSize: gib}},
		{"no original, flavor", nil, gib, 20 * gib, Layout{Mode: LayoutFresh, DiskSize: 20 * gib, RootNum: 1, RootStart: mib, RootSize: 20*gib - mib}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PlanLayout(c.orig, FSNeed{Bytes: c.need}, c.minDisk)
			if got.Note == "" {
				t.Error("no note")
			}
			got.Note = ""
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestArgv(t *testing.T) {
	sb := &Superblock{UUID: "6c3b5a3e-58f0-4a37-9d1e-2f6f1c0c9b10", Label: "rootfs", BlockSize: 4096, InodeSize: 256,
		Features: []string{"has_journal", "extent", "metadata_csum"}}
	l := Layout{RootStart: mib, RootSize: 2*gib - mib}
	got := strings.Join(MkfsArgs(l, sb, FSNeed{Inodes: 200000}, "", "/w/tree", "/w/disk.raw"), " ")
	want := "-q -F -b 4096 -I 256 -U 6c3b5a3e-58f0-4a37-9d1e-2f6f1c0c9b10 -L rootfs -O none,has_journal,extent,metadata_csum -N 200000 -E offset=1048576 -d /w/tree /w/disk.raw 524032"
	if got != want {
		t.Errorf("mkfs\n got %s\nwant %s", got, want)
	}
	// the default inode ratio wins when it gives more inodes than the tree needs
	got = strings.Join(MkfsArgs(l, nil, FSNeed{Inodes: 10}, "11111111-2222-4333-8444-555555555555", "/w/tree", "/w/disk.raw"), " ")
	want = "-q -F -b 4096 -U 11111111-2222-4333-8444-555555555555 -L rootfs -N 131008 -E offset=1048576 -d /w/tree /w/disk.raw 524032"
	if got != want {
		t.Errorf("mkfs fresh\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(QemuImgArgs("/w/disk.raw", "/w/s.qcow2", true), " "); got != "convert -q -f raw -O qcow2 -o compat=1.1 -c /w/disk.raw /w/s.qcow2" {
		t.Errorf("qemu-img %s", got)
	}
	if got := strings.Join(SfdiskGrowArgs("/w/disk.raw", 3), " "); got != "--no-reread --no-tell-kernel -q -N 3 /w/disk.raw" {
		t.Errorf("sfdisk %s", got)
	}
}

func TestUnfilterFstab(t *testing.T) {
	in := "# /etc/fstab\n" + fstabMarker + "UUID=abc / ext4 errors=remount-ro 0 1\n" + fstabMarker + "UUID=def /boot ext4 defaults 0 2\ntmpfs /scratch tmpfs defaults 0 0\n"
	out, n, ok := UnfilterFstab([]byte(in))
	want := "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\nUUID=def /boot ext4 defaults 0 2\ntmpfs /scratch tmpfs defaults 0 0\n"
	if string(out) != want || n != 2 || !ok {
		t.Errorf("got %q %d %v", out, n, ok)
	}
	if _, n, ok := UnfilterFstab([]byte("# empty\n")); n != 0 || ok {
		t.Errorf("empty fstab: %d %v", n, ok)
	}
}

func TestOriginalInPlace(t *testing.T) {
	for _, c := range []struct {
		fs, lv string
		ok     bool
		why    string
	}{
		{fs: "ext4", ok: true},
		{fs: "ext2", ok: true},
		{fs: "xfs", why: "filesystem is xfs"},
		{fs: "ext4", lv: "rootvg/root", why: "logical volume rootvg/root"},
		{fs: "xfs", lv: "rootvg/root", why: "logical volume rootvg/root (xfs)"},
	} {
		o := &Original{RootFS: c.fs, RootLV: c.lv}
		ok, why := o.InPlace()
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s on %q: InPlace = %v %q, want %v containing %q", c.fs, c.lv, ok, why, c.ok, c.why)
		}
	}
}
