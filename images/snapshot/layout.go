package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/images/disk"
)

// ErrTooSmall means the configured limits cannot hold the tree.
var ErrTooSmall = errors.New("snapshot: disk too small for the tree")

const (
	mib = 1 << 20
	gib = 1 << 30
	// freshRootStart is where a fresh layout's only partition begins (sfdisk's default
	// alignment, as tests/images/build.sh lays out its MBR images).
	freshRootStart = 1 * mib
	// gptTail is what the backup GPT (header + 128 entries) needs at the end of the disk.
	gptTail = 34 * 512
)

// Superblock is what a new root filesystem copies from the original one so that the original
// boot chain (GRUB's `search --fs-uuid`, the kernel's root=UUID=, fstab) finds it and the
// original kernel can mount it.
type Superblock struct {
	UUID      string
	Label     string
	BlockSize int64
	InodeSize int64
	// Features are the mke2fs names of the feature flags mke2fs can set; Dropped names flags
	// it cannot (or that make no sense on a fresh filesystem, like needs_recovery).
	Features []string
	Dropped  []string
}

type feature struct {
	word int // 0 compat, 1 incompat, 2 ro_compat
	bit  uint32
	name string
	make bool // settable by mke2fs -O and kept
}

// ext4Features lists the superblock feature bits by mke2fs name (e2fsprogs lib/e2p/feature.c
// numbering, which is the kernel's). Flags marked make=false are either runtime state or
// features whose copy would need more than -O (bigalloc's cluster size, an external journal).
var ext4Features = []feature{
	{0, 0x0004, "has_journal", true}, {0, 0x0008, "ext_attr", true}, {0, 0x0010, "resize_inode", true},
	{0, 0x0020, "dir_index", true}, {0, 0x0200, "sparse_super2", false}, {0, 0x0400, "fast_commit", false},
	{0, 0x0800, "stable_inodes", true}, {0, 0x1000, "orphan_file", true},
	{1, 0x0001, "compression", false}, {1, 0x0002, "filetype", true}, {1, 0x0004, "needs_recovery", false},
	{1, 0x0008, "journal_dev", false}, {1, 0x0010, "meta_bg", true}, {1, 0x0040, "extent", true},
	{1, 0x0080, "64bit", true}, {1, 0x0100, "mmp", false}, {1, 0x0200, "flex_bg", true},
	{1, 0x0400, "ea_inode", true}, {1, 0x1000, "dirdata", false}, {1, 0x2000, "metadata_csum_seed", true},
	{1, 0x4000, "large_dir", true}, {1, 0x8000, "inline_data", false}, {1, 0x10000, "encrypt", false},
	{1, 0x20000, "casefold", false},
	{2, 0x0001, "sparse_super", true}, {2, 0x0002, "large_file", true}, {2, 0x0008, "huge_file", true},
	{2, 0x0010, "uninit_bg", true}, {2, 0x0020, "dir_nlink", true}, {2, 0x0040, "extra_isize", true},
	{2, 0x0100, "quota", true}, {2, 0x0200, "bigalloc", false}, {2, 0x0400, "metadata_csum", true},
	{2, 0x1000, "read-only", false}, {2, 0x2000, "project", true}, {2, 0x8000, "verity", false},
	{2, 0x10000, "orphan_present", false},
}

// ParseSuperblock decodes the ext2/3/4 superblock (the 1024 bytes at offset 1024 of the
// filesystem).
func ParseSuperblock(sb []byte) (Superblock, error) {
	if len(sb) < 1024 || binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return Superblock{}, fmt.Errorf("original root: no ext2/3/4 superblock")
	}
	le := binary.LittleEndian
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 {
		return Superblock{}, fmt.Errorf("original root: block size 2^%d KiB out of range", logBS)
	}
	s := Superblock{BlockSize: 1024 << logBS, InodeSize: 128}
	if le.Uint32(sb[0x4C:]) >= 1 { // dynamic revision: inode size is recorded
		s.InodeSize = int64(le.Uint16(sb[0x58:]))
	}
	id, err := uuid.FromBytes(sb[0x68:0x78])
	if err != nil {
		return Superblock{}, fmt.Errorf("original root uuid: %w", err)
	}
	s.UUID = id.String()
	s.Label = strings.TrimRight(string(sb[0x78:0x88]), "\x00")
	words := [3]uint32{le.Uint32(sb[0x5C:]), le.Uint32(sb[0x60:]), le.Uint32(sb[0x64:])}
	var known [3]uint32
	for _, f := range ext4Features {
		known[f.word] |= f.bit
		if words[f.word]&f.bit == 0 {
			continue
		}
		if f.make {
			s.Features = append(s.Features, f.name)
		} else {
			s.Dropped = append(s.Dropped, f.name)
		}
	}
	for w, v := range words {
		for bit := uint32(1); bit != 0; bit <<= 1 {
			if v&bit != 0 && known[w]&bit == 0 {
				s.Dropped = append(s.Dropped, fmt.Sprintf("unknown-%d-%#x", w, bit))
			}
		}
	}
	return s, nil
}

// LayoutMode names how the snapshot's disk is laid out.
type LayoutMode string

const (
	// LayoutOriginal keeps the original disk byte for byte outside the root filesystem (boot
	// code, MBR gap, BIOS boot / EFI / separate /boot partitions, partition table) and writes
	// the new root filesystem into the original root partition, grown if needed.
	LayoutOriginal LayoutMode = "original"
	// LayoutFresh is one MBR partition from 1 MiB holding the tree, without a boot loader.
	LayoutFresh LayoutMode = "fresh"
)

// Original describes the original image's disk as the snapshot needs it.
type Original struct {
	VirtualSize int64
	Table       disk.TableType
	Partitions  []disk.Partition
	Root        disk.Partition // Number 0: filesystem on the whole disk
	Super       Superblock
	// RootFS is the root filesystem's kind ("ext4", "xfs", ...) and RootLV its "vg/lv" when
	// it is an LVM logical volume: only an ext root in a partition (or the whole disk) can be
	// replaced in place, as mkfs.ext4 is what writes the snapshot's root.
	RootFS string
	RootLV string
}

// InPlace says whether the snapshot's root can replace the original's in its partition,
// and if not, why.
func (o *Original) InPlace() (bool, string) {
	switch {
	case o.RootLV != "":
		return false, fmt.Sprintf("the original root is the LVM logical volume %s (%s); the snapshot's root is rebuilt as ext4 on a fresh disk", o.RootLV, o.RootFS)
	case !strings.HasPrefix(o.RootFS, "ext"):
		return false, fmt.Sprintf("the original root filesystem is %s; the snapshot's root is rebuilt as ext4 on a fresh disk", o.RootFS)
	}
	return true, ""
}

// Layout is the pure plan of the snapshot disk.
type Layout struct {
	Mode      LayoutMode
	DiskSize  int64
	RootNum   int   // partition number as Linux numbers it (0: whole disk)
	RootStart int64 // byte offset of the root filesystem
	RootSize  int64 // bytes of its partition (for Grow: before sfdisk; re-read after)
	// CopyHead is copied from the original disk: [0, CopyHead).
	CopyHead int64
	// CopyTail, when TailEnd > TailStart, is copied from the original at the same offsets.
	TailStart, TailEnd int64
	// Grow runs sfdisk to enlarge the root partition (the last one) to the end of the disk;
	// GPT also moves its backup header there.
	Grow bool
	GPT  bool
	Note string
}

// FSNeed is the size a filesystem holding a tree needs, with room to spare.
type FSNeed struct {
	Bytes  int64
	Inodes int64
}

// NeedFor sizes a filesystem for a tree: data blocks, one block per directory, inode tables,
// a journal, mke2fs's 5 % root reserve, 15 % slack for metadata and fragmentation, and 256 MiB
// so the booted guest has room to work before it is grown. Aligned to 1 MiB.
func NeedFor(st Stats, blockSize, inodeSize int64) FSNeed {
	if blockSize <= 0 {
		blockSize = 4096
	}
	if inodeSize <= 0 {
		inodeSize = 256
	}
	// Blocks4K is counted in 4 KiB blocks: a smaller block size wastes less, never more.
	data := st.Blocks4K * 4096
	data += (st.Dirs + st.LongSymlns) * blockSize
	inodes := st.Inodes()*5/4 + 8192
	meta := inodes*inodeSize + 128*mib // inode tables + journal and group metadata
	b := (data + meta) * 115 / 100
	b = b * 100 / 95
	b += 256 * mib
	return FSNeed{Bytes: alignUp(b, mib), Inodes: inodes}
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// PlanLayout lays out the snapshot disk. With an original whose root the tree fits in, the
// original layout is kept unchanged; if the root partition is the last one it is grown;
// otherwise (no original, or a root squeezed between partitions) a fresh single-partition
// disk is used and the Note says why.
func PlanLayout(orig *Original, need FSNeed, minDisk int64) Layout {
	if orig != nil {
		root := orig.Root
		rootEnd := root.Start + root.Size
		gpt := orig.Table == disk.TableGPT
		if need.Bytes <= root.Size && minDisk <= orig.VirtualSize {
			return Layout{Mode: LayoutOriginal, DiskSize: orig.VirtualSize, RootNum: root.Number,
				RootStart: root.Start, RootSize: root.Size, CopyHead: root.Start,
				TailStart: rootEnd, TailEnd: orig.VirtualSize, GPT: gpt,
				Note: fmt.Sprintf("original layout kept; root in partition %d", root.Number)}
		}
		last := !slices.ContainsFunc(orig.Partitions, func(p disk.Partition) bool {
			return p.Number != root.Number && p.Role != disk.RoleExtended && p.Start+p.Size > root.Start
		})
		growable := orig.Table == disk.TableNone || orig.Table == disk.TableGPT ||
			(orig.Table == disk.TableMBR && root.Number >= 1 && root.Number <= 4)
		if last && growable {
			tail := int64(0)
			if gpt {
				tail = gptTail
			}
			size := alignUp(max(root.Start+need.Bytes+tail, minDisk, orig.VirtualSize), mib)
			return Layout{Mode: LayoutOriginal, DiskSize: size, RootNum: root.Number, RootStart: root.Start,
				RootSize: size - root.Start - tail, CopyHead: root.Start, Grow: orig.Table != disk.TableNone, GPT: gpt,
				Note: fmt.Sprintf("original layout kept; root partition %d grown from %d to fill a %d-byte disk", root.Number, root.Size, size)}
		}
		l := freshLayout(need, minDisk)
		l.Note = fmt.Sprintf("fresh layout: the tree needs %d bytes, the original root partition %d has %d and cannot grow (not the last partition)",
			need.Bytes, root.Number, root.Size)
		return l
	}
	l := freshLayout(need, minDisk)
	l.Note = "fresh layout: no original image given"
	return l
}

func freshLayout(need FSNeed, minDisk int64) Layout {
	size := alignUp(max(freshRootStart+need.Bytes, minDisk), mib)
	return Layout{Mode: LayoutFresh, DiskSize: size, RootNum: 1, RootStart: freshRootStart, RootSize: size - freshRootStart}
}

// freshTable is the sfdisk script of a fresh layout (one bootable Linux partition from 1 MiB).
const freshTable = "label: dos\nstart=2048, type=83, bootable\n"

// MkfsArgs is the mkfs.ext4 argv that builds the root filesystem from dir straight into the
// disk file at the root's offset. sb is nil for a fresh layout (host defaults, new UUID).
func MkfsArgs(l Layout, sb *Superblock, need FSNeed, newUUID, dir, diskPath string) []string {
	bs := int64(4096)
	args := []string{"-q", "-F"}
	if sb != nil {
		bs = sb.BlockSize
		args = append(args, "-b", strconv.FormatInt(sb.BlockSize, 10), "-I", strconv.FormatInt(sb.InodeSize, 10),
			"-U", sb.UUID)
		if sb.Label != "" {
			args = append(args, "-L", sb.Label)
		}
		args = append(args, "-O", "none,"+strings.Join(sb.Features, ","))
	} else {
		args = append(args, "-b", "4096", "-U", newUUID, "-L", "rootfs")
	}
	blocks := l.RootSize / bs
	inodes := max(need.Inodes, blocks*bs/16384)
	args = append(args, "-N", strconv.FormatInt(inodes, 10), "-E", "offset="+strconv.FormatInt(l.RootStart, 10),
		"-d", dir, diskPath, strconv.FormatInt(blocks, 10))
	return args
}
