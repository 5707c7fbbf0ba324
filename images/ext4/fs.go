package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrCorrupt marks on-disk structures that contradict each other or the filesystem's size.
var ErrCorrupt = errors.New("ext4: corrupt filesystem")

// ErrUnsupported marks a valid filesystem using a feature this reader cannot read faithfully.
var ErrUnsupported = errors.New("ext4: unsupported feature")

// ErrNotExt is returned by Open when there is no ext2/3/4 superblock.
var ErrNotExt = errors.New("ext4: no ext2/3/4 superblock")

// RootIno is the inode number of the root directory.
const RootIno = 2

const (
	sbOffset = 1024
	sbMagic  = 0xEF53

	compatSparseSuper2 = 0x200
	compatHasJournal   = 0x4

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	rocompatSparseSuper = 0x1
	rocompatHugeFile    = 0x8

	// incompatKnown lists what this reader understands; anything else is refused, because an
	// unknown incompatible feature by definition changes how the disk must be read.
	incompatKnown = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents | incompat64bit |
		incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed | incompatLargeDir |
		incompatInlineData | incompatEncrypt | incompatCasefold

	inodeChunk = 64 << 10 // inode-table bytes fetched and cached at once
	inodeCache = 64       // chunks kept (4 MiB)
)

// FS is a read-only ext2/3/4 filesystem over an io.ReaderAt. Methods are safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64

	blockSize      int64
	blocksCount    uint64
	inodesCount    uint32
	inodesPerGroup uint32
	blocksPerGroup uint32
	firstDataBlock uint64
	inodeSize      int64
	descSize       int64
	groups         uint32
	compat         uint32
	incompat       uint32
	rocompat       uint32
	itable         []uint64 // inode table block of each group

	// Label and UUID come from the superblock.
	label string
	uuid  [16]byte

	mu     sync.Mutex
	chunks map[int64][]byte
	order  []int64
}

// Open reads the superblock and group descriptors of the filesystem in r (size bytes long) and
// checks them against size, so later reads can trust block numbers below BlocksCount.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, sbOffset); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[56:]) != sbMagic {
		return nil, ErrNotExt
	}
	f := &FS{r: r, size: size, chunks: map[int64][]byte{}}
	logBS := le.Uint32(sb[24:])
	if logBS > 6 {
		return nil, fmt.Errorf("block size 1024<<%d: %w", logBS, ErrCorrupt)
	}
	f.blockSize = 1024 << logBS
	f.compat, f.incompat, f.rocompat = le.Uint32(sb[92:]), le.Uint32(sb[96:]), le.Uint32(sb[100:])
	if f.incompat&incompatJournalDev != 0 {
		return nil, fmt.Errorf("external journal device, not a filesystem: %w", ErrUnsupported)
	}
	if u := f.incompat &^ incompatKnown; u != 0 {
		return nil, fmt.Errorf("incompatible features %#x: %w", u, ErrUnsupported)
	}
	f.blocksCount = uint64(le.Uint32(sb[4:]))
	if f.incompat&incompat64bit != 0 {
		f.blocksCount |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	f.inodesCount = le.Uint32(sb[0:])
	f.firstDataBlock = uint64(le.Uint32(sb[20:]))
	f.blocksPerGroup = le.Uint32(sb[32:])
	f.inodesPerGroup = le.Uint32(sb[40:])
	f.inodeSize = 128
	if le.Uint32(sb[76:]) >= 1 {
		f.inodeSize = int64(le.Uint16(sb[88:]))
	}
	if f.inodeSize < 128 || f.inodeSize > f.blockSize || f.inodeSize&(f.inodeSize-1) != 0 {
		return nil, fmt.Errorf("inode size %d: %w", f.inodeSize, ErrCorrupt)
	}
	f.descSize = 32
	if f.incompat&incompat64bit != 0 {
		f.descSize = int64(le.Uint16(sb[0xFE:]))
		if f.descSize < 32 || f.descSize > f.blockSize || f.descSize&(f.descSize-1) != 0 {
			return nil, fmt.Errorf("group descriptor size %d: %w", f.descSize, ErrCorrupt)
		}
	}
	copy(f.uuid[:], sb[104:120])
	f.label = cstring(sb[120:136])

	// Everything below is what a hostile superblock could use to make us allocate or loop: check
	// it against the bytes we actually have.
	if f.blocksCount == 0 || f.blocksCount > uint64(size)/uint64(f.blockSize) {
		return nil, fmt.Errorf("filesystem of %d blocks of %d bytes does not fit its %d-byte partition: %w",
			f.blocksCount, f.blockSize, size, ErrCorrupt)
	}
	if f.blocksPerGroup == 0 || f.inodesPerGroup == 0 || f.blocksPerGroup > uint32(8*f.blockSize) ||
		f.inodesPerGroup > uint32(8*f.blockSize) || f.firstDataBlock >= f.blocksCount {
		return nil, fmt.Errorf("group geometry (%d blocks, %d inodes per group): %w", f.blocksPerGroup, f.inodesPerGroup, ErrCorrupt)
	}
	groups := (f.blocksCount - f.firstDataBlock + uint64(f.blocksPerGroup) - 1) / uint64(f.blocksPerGroup)
	if uint64(f.inodesCount) > groups*uint64(f.inodesPerGroup) || f.inodesCount < RootIno {
		return nil, fmt.Errorf("%d inodes for %d groups of %d: %w", f.inodesCount, groups, f.inodesPerGroup, ErrCorrupt)
	}
	f.groups = uint32(groups)
	if err := f.readGroupDescriptors(sb); err != nil {
		return nil, err
	}
	return f, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// hasSuper reports whether group g carries a superblock backup (and so, with meta_bg, whether its
// descriptor block follows one).
func (f *FS) hasSuper(g uint64, sb []byte) bool {
	if g == 0 {
		return true
	}
	if f.compat&compatSparseSuper2 != 0 {
		le := binary.LittleEndian
		return g == uint64(le.Uint32(sb[0x24C:])) || g == uint64(le.Uint32(sb[0x250:]))
	}
	if f.rocompat&rocompatSparseSuper == 0 || g == 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		p := base
		for p < g {
			p *= base
		}
		if p == g {
			return true
		}
	}
	return false
}

func (f *FS) readGroupDescriptors(sb []byte) error {
	le := binary.LittleEndian
	perBlock := uint64(f.blockSize / f.descSize)
	nblocks := (uint64(f.groups) + perBlock - 1) / perBlock
	firstMeta := uint64(^uint32(0))
	if f.incompat&incompatMetaBG != 0 {
		firstMeta = uint64(le.Uint32(sb[0x104:]))
	}
	f.itable = make([]uint64, f.groups)
	buf := make([]byte, f.blockSize)
	for i := uint64(0); i < nblocks; i++ {
		blk := f.firstDataBlock + 1 + i
		if i >= firstMeta {
			// meta_bg: descriptor block i lives in the first group of meta group i.
			g := i * perBlock
			blk = f.firstDataBlock + g*uint64(f.blocksPerGroup)
			if f.hasSuper(g, sb) {
				blk++
			}
		}
		if blk >= f.blocksCount {
			return fmt.Errorf("group descriptor block %d beyond the filesystem: %w", blk, ErrCorrupt)
		}
		if _, err := f.r.ReadAt(buf, int64(blk)*f.blockSize); err != nil {
			return fmt.Errorf("read group descriptors at block %d: %w", blk, err)
		}
		for k := uint64(0); k < perBlock && i*perBlock+k < uint64(f.groups); k++ {
			d := buf[k*uint64(f.descSize):]
			it := uint64(le.Uint32(d[8:]))
			if f.descSize >= 64 {
				it |= uint64(le.Uint32(d[0x28:])) << 32
			}
			tableBlocks := (uint64(f.inodesPerGroup)*uint64(f.inodeSize) + uint64(f.blockSize) - 1) / uint64(f.blockSize)
			if it == 0 || it+tableBlocks > f.blocksCount {
				return fmt.Errorf("group %d inode table at block %d beyond the filesystem: %w", i*perBlock+k, it, ErrCorrupt)
			}
			f.itable[i*perBlock+k] = it
		}
	}
	return nil
}

// BlockSize is the filesystem block size in bytes.
func (f *FS) BlockSize() int64 { return f.blockSize }

// Size is the filesystem size in bytes (blocks × block size).
func (f *FS) Size() int64 { return int64(f.blocksCount) * f.blockSize }

// Label is the volume label.
func (f *FS) Label() string { return f.label }

// UUID is the filesystem UUID in its usual text form.
func (f *FS) UUID() string {
	u := f.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// NeedsRecovery reports a journal that was not replayed (the image was taken from a running
// system). Metadata still in the journal is not visible to this reader.
func (f *FS) NeedsRecovery() bool { return f.incompat&incompatRecover != 0 }

// Kind names the ext flavour: ext4 when any ext4-only feature is on, ext3 with a journal, ext2.
func (f *FS) Kind() string {
	switch {
	case f.incompat&^(incompatFiletype|incompatRecover|incompatMetaBG) != 0:
		return "ext4"
	case f.compat&compatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// InodesCount is the number of inodes the filesystem has room for.
func (f *FS) InodesCount() uint32 { return f.inodesCount }

// rawInode returns a copy of inode ino's on-disk bytes, through a small cache of inode-table
// chunks: a directory walk touches inodes in table order, so one 64 KiB read serves hundreds.
func (f *FS) rawInode(ino uint32) ([]byte, error) {
	if ino == 0 || ino > f.inodesCount {
		return nil, fmt.Errorf("inode %d outside 1..%d: %w", ino, f.inodesCount, ErrCorrupt)
	}
	g := (ino - 1) / f.inodesPerGroup
	idx := int64((ino - 1) % f.inodesPerGroup)
	tableStart := int64(f.itable[g]) * f.blockSize
	tableLen := int64(f.inodesPerGroup) * f.inodeSize
	off := idx * f.inodeSize
	chunkOff := off &^ (inodeChunk - 1)
	key := tableStart + chunkOff
	f.mu.Lock()
	chunk, ok := f.chunks[key]
	f.mu.Unlock()
	if !ok {
		n := min(int64(inodeChunk), tableLen-chunkOff)
		chunk = make([]byte, n)
		if _, err := f.r.ReadAt(chunk, key); err != nil {
			return nil, fmt.Errorf("read inode table of group %d: %w", g, err)
		}
		f.mu.Lock()
		if _, dup := f.chunks[key]; !dup {
			f.chunks[key] = chunk
			f.order = append(f.order, key)
			if len(f.order) > inodeCache {
				delete(f.chunks, f.order[0])
				f.order = f.order[1:]
			}
		}
		f.mu.Unlock()
	}
	raw := make([]byte, f.inodeSize)
	copy(raw, chunk[off-chunkOff:])
	return raw, nil
}

// readBlock reads physical block n into buf (len = block size).
func (f *FS) readBlock(n uint64, buf []byte) error {
	if n >= f.blocksCount {
		return fmt.Errorf("block %d beyond the %d-block filesystem: %w", n, f.blocksCount, ErrCorrupt)
	}
	if _, err := f.r.ReadAt(buf, int64(n)*f.blockSize); err != nil {
		return fmt.Errorf("read block %d: %w", n, err)
	}
	return nil
}
