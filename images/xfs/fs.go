package xfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// ErrCorrupt marks on-disk structures that contradict each other or the filesystem's size.
var ErrCorrupt = errors.New("xfs: corrupt filesystem")

// ErrUnsupported marks a valid filesystem using a feature this reader cannot read faithfully.
var ErrUnsupported = errors.New("xfs: unsupported feature")

// ErrNotXFS is returned by Open when there is no XFS superblock.
var ErrNotXFS = errors.New("xfs: no XFS superblock")

var be = binary.BigEndian

const (
	sbMagic = 0x58465342 // "XFSB"

	// sb_versionnum bits that matter for reading (the low nibble is the version).
	versionDirV2    = 0x2000
	versionMoreBits = 0x8000
	versionNlink    = 0x20

	// sb_features2 (v4 only; v5 has them all or has dedicated feature words).
	features2Ftype = 0x200
	features2CRC   = 0x100

	// sb_features_incompat (v5).
	incompatFtype      = 0x1
	incompatSpInodes   = 0x2
	incompatMetaUUID   = 0x4
	incompatBigtime    = 0x8
	incompatNeedRepair = 0x10
	incompatNrext64    = 0x20
	incompatExchange   = 0x40
	incompatParent     = 0x80

	// incompatKnown lists the v5 incompatible features this reader understands; any other one
	// changes how the disk must be read by definition, so it is refused. Sparse inode chunks
	// only change allocation, which a reader addressing inodes by number never consults;
	// file-range exchange only adds log items; parent pointers are attributes flagged as such,
	// which Xattrs leaves out.
	incompatKnown = incompatFtype | incompatSpInodes | incompatMetaUUID | incompatBigtime | incompatNrext64 |
		incompatExchange | incompatParent

	inodeChunk = 64 << 10 // inode bytes fetched and cached at once
	inodeCache = 64       // chunks kept (4 MiB)

	// maxExtents bounds the extent list built for one fork: a real file this fragmented does
	// not exist, and the list is held in memory while the file is read.
	maxExtents = 1 << 21
)

// FS is a read-only XFS filesystem (v5, and v4 with version-2 directories) over an io.ReaderAt.
// Methods are safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64

	version   int  // 4 or 5
	crc       bool // v5: self-describing metadata headers
	ftype     bool // directory entries carry a file type byte
	nrext64   bool
	blockSize int64
	blockLog  uint
	dblocks   uint64
	agBlocks  uint64
	agCount   uint64
	agBlkLog  uint
	inodeSize int64
	inopbLog  uint
	dirBlkLog uint
	rootIno   uint64

	label string
	uuid  [16]byte

	mu     sync.Mutex
	chunks map[int64][]byte
	order  []int64
}

// Open reads the primary superblock of the filesystem in r (size bytes long) and checks its
// geometry against size, so later reads can trust any block number that maps inside it.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrNotXFS
		}
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	if be.Uint32(sb[0:]) != sbMagic {
		return nil, ErrNotXFS
	}
	f := &FS{r: r, size: size, chunks: map[int64][]byte{}}
	vnum := be.Uint16(sb[100:])
	f.version = int(vnum & 0xF)
	switch f.version {
	case 5:
		f.crc = true
		incompat := be.Uint32(sb[216:])
		if incompat&incompatNeedRepair != 0 {
			return nil, fmt.Errorf("filesystem marked as needing xfs_repair: %w", ErrUnsupported)
		}
		if u := incompat &^ incompatKnown; u != 0 {
			return nil, fmt.Errorf("incompatible features %#x: %w", u, ErrUnsupported)
		}
		f.ftype = incompat&incompatFtype != 0
		f.nrext64 = incompat&incompatNrext64 != 0
	case 4:
		if vnum&versionDirV2 == 0 {
			return nil, fmt.Errorf("version 1 directories: %w", ErrUnsupported)
		}
		if vnum&versionMoreBits != 0 {
			f2 := be.Uint32(sb[200:])
			f.ftype = f2&features2Ftype != 0
			if f2&features2CRC != 0 {
				return nil, fmt.Errorf("v4 superblock with the CRC feature: %w", ErrCorrupt)
			}
		}
	case 1, 2, 3:
		return nil, fmt.Errorf("superblock version %d (IRIX-era): %w", f.version, ErrUnsupported)
	default:
		return nil, fmt.Errorf("superblock version %d: %w", f.version, ErrCorrupt)
	}
	f.blockSize = int64(be.Uint32(sb[4:]))
	f.dblocks = be.Uint64(sb[8:])
	rblocks := be.Uint64(sb[16:])
	copy(f.uuid[:], sb[32:48])
	f.rootIno = be.Uint64(sb[56:])
	f.agBlocks = uint64(be.Uint32(sb[84:]))
	f.agCount = uint64(be.Uint32(sb[88:]))
	sectSize := int64(be.Uint16(sb[102:]))
	f.inodeSize = int64(be.Uint16(sb[104:]))
	inopb := int64(be.Uint16(sb[106:]))
	f.label = cstring(sb[108:120])
	f.blockLog = uint(sb[120])
	inodeLog := uint(sb[122])
	f.inopbLog = uint(sb[123])
	f.agBlkLog = uint(sb[124])
	f.dirBlkLog = uint(sb[192])

	if sb[126] != 0 {
		return nil, fmt.Errorf("mkfs.xfs did not finish making this filesystem: %w", ErrCorrupt)
	}

	// Everything below is what a hostile superblock could use to make us allocate, loop or read
	// outside the filesystem: check each field against the others and against size.
	if f.blockLog < 9 || f.blockLog > 16 || f.blockSize != 1<<f.blockLog {
		return nil, fmt.Errorf("block size %d (log %d): %w", f.blockSize, f.blockLog, ErrCorrupt)
	}
	if sectSize < 512 || sectSize > f.blockSize || sectSize&(sectSize-1) != 0 {
		return nil, fmt.Errorf("sector size %d: %w", sectSize, ErrCorrupt)
	}
	if inodeLog < 8 || inodeLog > 11 || f.inodeSize != 1<<inodeLog || f.inodeSize > f.blockSize ||
		f.inopbLog != f.blockLog-inodeLog || inopb != f.blockSize/f.inodeSize {
		return nil, fmt.Errorf("inode size %d (log %d, %d per block, log %d): %w", f.inodeSize, inodeLog, inopb, f.inopbLog, ErrCorrupt)
	}
	if f.crc && f.inodeSize < 512 {
		return nil, fmt.Errorf("v5 inode size %d: %w", f.inodeSize, ErrCorrupt)
	}
	if f.blockLog+f.dirBlkLog > 16 {
		return nil, fmt.Errorf("directory block size %d<<%d: %w", f.blockSize, f.dirBlkLog, ErrCorrupt)
	}
	if f.agBlocks < 5 || f.agCount == 0 || f.agBlkLog > 31 || f.agBlkLog != uint(bits.Len64(f.agBlocks-1)) {
		return nil, fmt.Errorf("allocation group geometry (%d groups of %d blocks, log %d): %w", f.agCount, f.agBlocks, f.agBlkLog, ErrCorrupt)
	}
	if f.dblocks == 0 || f.dblocks > uint64(size)>>f.blockLog {
		return nil, fmt.Errorf("filesystem of %d blocks of %d bytes does not fit its %d-byte partition: %w",
			f.dblocks, f.blockSize, size, ErrCorrupt)
	}
	if f.dblocks > f.agCount*f.agBlocks || f.dblocks <= (f.agCount-1)*f.agBlocks {
		return nil, fmt.Errorf("%d blocks in %d groups of %d: %w", f.dblocks, f.agCount, f.agBlocks, ErrCorrupt)
	}
	if rblocks != 0 {
		// Realtime data lives on another device this image does not contain.
		return nil, fmt.Errorf("realtime subvolume of %d blocks: %w", rblocks, ErrUnsupported)
	}
	root, err := f.Inode(f.rootIno)
	if err != nil {
		return nil, fmt.Errorf("root inode: %w", err)
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("root inode %d is not a directory: %w", f.rootIno, ErrCorrupt)
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

// BlockSize is the filesystem block size in bytes.
func (f *FS) BlockSize() int64 { return f.blockSize }

// Size is the filesystem size in bytes (data blocks × block size).
func (f *FS) Size() int64 { return int64(f.dblocks) << f.blockLog }

// Label is the volume label.
func (f *FS) Label() string { return f.label }

// UUID is the filesystem UUID in its usual text form.
func (f *FS) UUID() string {
	u := f.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Version is the superblock version: 5 (metadata checksums, what mkfs.xfs makes today) or 4.
func (f *FS) Version() int { return f.version }

// RootIno is the inode number of the root directory.
func (f *FS) RootIno() uint64 { return f.rootIno }

// daddr turns a filesystem block number (AG number in the high bits, block within the AG in the
// low agblklog bits) into a byte offset, refusing blocks outside the filesystem.
func (f *FS) daddr(fsb uint64) (int64, error) {
	ag, agb := fsb>>f.agBlkLog, fsb&(1<<f.agBlkLog-1)
	if ag >= f.agCount || agb >= f.agBlocks {
		return 0, fmt.Errorf("block %#x (group %d, block %d) outside the filesystem: %w", fsb, ag, agb, ErrCorrupt)
	}
	lin := ag*f.agBlocks + agb
	if lin >= f.dblocks {
		return 0, fmt.Errorf("block %#x beyond the %d-block filesystem: %w", fsb, f.dblocks, ErrCorrupt)
	}
	return int64(lin) << f.blockLog, nil
}

// checkRun checks that n blocks starting at fsb stay inside one allocation group and the
// filesystem (an extent never crosses a group).
func (f *FS) checkRun(fsb, n uint64) error {
	ag, agb := fsb>>f.agBlkLog, fsb&(1<<f.agBlkLog-1)
	if n == 0 || agb+n > f.agBlocks || agb+n < agb {
		return fmt.Errorf("extent of %d blocks at %#x crosses its group: %w", n, fsb, ErrCorrupt)
	}
	if ag*f.agBlocks+agb+n > f.dblocks || ag >= f.agCount {
		return fmt.Errorf("extent of %d blocks at %#x beyond the filesystem: %w", n, fsb, ErrCorrupt)
	}
	return nil
}

// readBlock reads filesystem block fsb into buf (len = block size, or a directory block).
func (f *FS) readBlock(fsb uint64, buf []byte) error {
	off, err := f.daddr(fsb)
	if err != nil {
		return err
	}
	if err := f.checkRun(fsb, uint64((int64(len(buf))+f.blockSize-1)>>f.blockLog)); err != nil {
		return err
	}
	if _, err := f.r.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read block %#x: %w", fsb, err)
	}
	return nil
}

// inodePos returns the byte offset of inode ino, which encodes its AG, block and slot.
func (f *FS) inodePos(ino uint64) (int64, uint64, error) {
	slot := ino & (1<<f.inopbLog - 1)
	fsb := ino >> f.inopbLog
	if fsb>>f.agBlkLog >= f.agCount || ino>>(f.inopbLog+f.agBlkLog+32) != 0 {
		return 0, 0, fmt.Errorf("inode %d outside the filesystem: %w", ino, ErrCorrupt)
	}
	off, err := f.daddr(fsb)
	if err != nil || fsb == 0 {
		return 0, 0, fmt.Errorf("inode %d outside the filesystem: %w", ino, ErrCorrupt)
	}
	return off + int64(slot)*f.inodeSize, slot, nil
}

// rawInode returns a copy of inode ino's on-disk bytes, through a small cache of chunks: a
// directory walk touches inodes of one chunk (64 per cluster) together.
func (f *FS) rawInode(ino uint64) ([]byte, error) {
	off, _, err := f.inodePos(ino)
	if err != nil {
		return nil, err
	}
	key := off &^ (inodeChunk - 1)
	f.mu.Lock()
	chunk, ok := f.chunks[key]
	f.mu.Unlock()
	if !ok {
		n := min(int64(inodeChunk), f.Size()-key)
		chunk = make([]byte, n)
		if _, err := f.r.ReadAt(chunk, key); err != nil {
			return nil, fmt.Errorf("read inode %d: %w", ino, err)
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
	rel := off - key
	if rel+f.inodeSize > int64(len(chunk)) {
		return nil, fmt.Errorf("inode %d beyond the filesystem: %w", ino, ErrCorrupt)
	}
	raw := make([]byte, f.inodeSize)
	copy(raw, chunk[rel:])
	return raw, nil
}
