package xfs

import (
	"fmt"
	"io"
	"time"
)

// File type bits of Inode.Mode (S_IFMT).
const (
	S_IFMT   = 0xF000
	S_IFSOCK = 0xC000
	S_IFLNK  = 0xA000
	S_IFREG  = 0x8000
	S_IFBLK  = 0x6000
	S_IFDIR  = 0x4000
	S_IFCHR  = 0x2000
	S_IFIFO  = 0x1000
)

const (
	inodeMagic = 0x494E // "IN"

	// di_format / di_aformat values.
	fmtDev     = 0
	fmtLocal   = 1
	fmtExtents = 2
	fmtBtree   = 3

	diflagRealtime = 0x1
	diflag2Bigtime = 0x8
	diflag2Nrext64 = 0x10

	bmapMagic  = 0x424D4150 // "BMAP", v4 bmbt block
	bmap3Magic = 0x424D4133 // "BMA3", v5 bmbt block

	symlinkMagic  = 0x58534C4D // "XSLM", v5 remote symlink block header
	symlinkMaxLen = 1024

	// bigtimeEpochOffset: bigtime timestamps count nanoseconds from 1901-12-13 (INT32_MIN s).
	bigtimeEpochOffset = 1 << 31
)

// Inode is the metadata of one file, decoded from its on-disk record.
type Inode struct {
	Ino   uint64
	Mode  uint16 // type and permission bits, as in st_mode
	UID   uint32
	GID   uint32
	Size  uint64
	Links uint32
	Mtime time.Time
	Atime time.Time
	Ctime time.Time

	format, aformat int
	nextents        uint64
	anextents       uint64
	nblocks         uint64
	flags           uint16
	dataFork        []byte
	attrFork        []byte
}

// Type returns the S_IFMT bits.
func (i *Inode) Type() uint16 { return i.Mode & S_IFMT }

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Type() == S_IFDIR }

// Perm returns the permission bits including setuid, setgid and sticky.
func (i *Inode) Perm() uint16 { return i.Mode & 0o7777 }

// Device returns the major and minor numbers of a character or block device inode. XFS stores
// them as one 32-bit word, the major in the top 14 bits (of which Linux keeps 9) and the minor in
// the low 18.
func (i *Inode) Device() (major, minor uint32) {
	if i.format != fmtDev || len(i.dataFork) < 4 {
		return 0, 0
	}
	d := be.Uint32(i.dataFork)
	return (d >> 18) & 0x1FF, d & 0x3FFFF
}

// Inode reads inode ino.
func (f *FS) Inode(ino uint64) (*Inode, error) {
	raw, err := f.rawInode(ino)
	if err != nil {
		return nil, err
	}
	if be.Uint16(raw[0:]) != inodeMagic {
		return nil, fmt.Errorf("inode %d: bad magic %#x: %w", ino, be.Uint16(raw[0:]), ErrCorrupt)
	}
	in := &Inode{Ino: ino, Mode: be.Uint16(raw[2:])}
	version := raw[4]
	in.format, in.aformat = int(raw[5]), int(raw[83])
	in.UID, in.GID = be.Uint32(raw[8:]), be.Uint32(raw[12:])
	litOff := int64(100)
	var flags2 uint64
	switch {
	case version == 3 && f.crc:
		litOff = 176
		flags2 = be.Uint64(raw[120:])
		if got := be.Uint64(raw[152:]); got != ino {
			return nil, fmt.Errorf("inode %d claims to be inode %d: %w", ino, got, ErrCorrupt)
		}
		in.Links = be.Uint32(raw[16:])
	case version == 2 && !f.crc:
		in.Links = be.Uint32(raw[16:])
	case version == 1 && !f.crc:
		in.Links = uint32(be.Uint16(raw[6:]))
	default:
		return nil, fmt.Errorf("inode %d: version %d on a v%d filesystem: %w", ino, version, f.version, ErrCorrupt)
	}
	in.Size = be.Uint64(raw[56:])
	in.nblocks = be.Uint64(raw[64:])
	in.flags = be.Uint16(raw[90:])
	if flags2&diflag2Nrext64 != 0 {
		if !f.nrext64 {
			return nil, fmt.Errorf("inode %d uses large extent counts the superblock does not enable: %w", ino, ErrCorrupt)
		}
		in.nextents = be.Uint64(raw[24:])
		in.anextents = uint64(be.Uint32(raw[76:]))
	} else {
		in.nextents = uint64(be.Uint32(raw[76:]))
		in.anextents = uint64(be.Uint16(raw[80:]))
	}
	ts := func(off int) time.Time {
		if flags2&diflag2Bigtime != 0 {
			ns := be.Uint64(raw[off:])
			return time.Unix(int64(ns/1e9)-bigtimeEpochOffset, int64(ns%1e9))
		}
		sec, nsec := int64(int32(be.Uint32(raw[off:]))), int64(be.Uint32(raw[off+4:]))
		if nsec > 999999999 {
			nsec = 0
		}
		return time.Unix(sec, nsec)
	}
	in.Atime, in.Mtime, in.Ctime = ts(32), ts(40), ts(48)

	lit := raw[litOff:]
	forkOff := int64(raw[82]) * 8
	if forkOff > int64(len(lit)) {
		return nil, fmt.Errorf("inode %d: attribute fork offset %d: %w", ino, forkOff, ErrCorrupt)
	}
	if forkOff == 0 {
		in.dataFork = lit
	} else {
		in.dataFork, in.attrFork = lit[:forkOff], lit[forkOff:]
	}
	switch in.Type() {
	case S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK:
		if in.format != fmtDev {
			return nil, fmt.Errorf("inode %d: special file with data fork format %d: %w", ino, in.format, ErrCorrupt)
		}
	case S_IFREG, S_IFDIR, S_IFLNK:
		if in.format < fmtLocal || in.format > fmtBtree || (in.format == fmtLocal && in.Type() == S_IFREG) {
			return nil, fmt.Errorf("inode %d: data fork format %d: %w", ino, in.format, ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("inode %d: file type %#o: %w", ino, in.Type(), ErrCorrupt)
	}
	if in.flags&diflagRealtime != 0 {
		return nil, fmt.Errorf("inode %d lives on the realtime device: %w", ino, ErrUnsupported)
	}
	if in.Size > 1<<63-1 {
		return nil, fmt.Errorf("inode %d size %d: %w", ino, in.Size, ErrCorrupt)
	}
	return in, nil
}

// extent maps length blocks of a fork starting at logical block to filesystem block physical;
// unwritten extents (preallocated with fallocate) read as zeros, as do unmapped ranges.
type extent struct {
	logical, physical, length uint64
	unwritten                 bool
}

// decodeExtent unpacks a 128-bit bmbt record: flag (1), start offset (54), start block (52),
// block count (21).
func decodeExtent(b []byte) extent {
	l0, l1 := be.Uint64(b), be.Uint64(b[8:])
	return extent{
		unwritten: l0>>63 != 0,
		logical:   (l0 & (1<<63 - 1)) >> 9,
		physical:  (l0&(1<<9-1))<<43 | l1>>21,
		length:    l1 & (1<<21 - 1),
	}
}

// mapWalk builds an extent list in logical order, checking every record against the filesystem
// and the ones before it.
type mapWalk struct {
	f      *FS
	ino    uint64
	limit  uint64 // logical blocks of interest: extents past it are checked but not kept
	next   uint64 // lowest logical block the next extent may start at
	budget uint64 // btree blocks we may still read
	seen   map[uint64]bool
	out    []extent
}

func (w *mapWalk) add(e extent) error {
	if e.length == 0 || e.logical < w.next {
		return fmt.Errorf("extent at logical block %d (%d blocks) overlaps the previous one or is empty: %w", e.logical, e.length, ErrCorrupt)
	}
	if err := w.f.checkRun(e.physical, e.length); err != nil {
		return err
	}
	w.next = e.logical + e.length
	if e.logical >= w.limit {
		return nil // preallocated past EOF (fallocate KEEP_SIZE), or past the directory data
	}
	if len(w.out) >= maxExtents {
		return fmt.Errorf("more than %d extents: %w", maxExtents, ErrUnsupported)
	}
	e.length = min(e.length, w.limit-e.logical)
	w.out = append(w.out, e)
	return nil
}

// forkMap returns the extents of a fork (the data fork unless attr) below limit logical blocks.
func (f *FS) forkMap(in *Inode, attr bool, limit uint64) ([]extent, error) {
	format, fork, count := in.format, in.dataFork, in.nextents
	which := "data"
	if attr {
		format, fork, count, which = in.aformat, in.attrFork, in.anextents, "attribute"
	}
	w := &mapWalk{f: f, ino: in.Ino, limit: limit, budget: min(in.nblocks, f.dblocks) + 1, seen: map[uint64]bool{}}
	switch format {
	case fmtExtents:
		if count*16 > uint64(len(fork)) {
			return nil, fmt.Errorf("inode %d %s fork: %d extents in %d bytes: %w", in.Ino, which, count, len(fork), ErrCorrupt)
		}
		for k := range count {
			if err := w.add(decodeExtent(fork[16*k:])); err != nil {
				return nil, fmt.Errorf("inode %d %s fork: %w", in.Ino, which, err)
			}
		}
	case fmtBtree:
		if err := w.root(fork); err != nil {
			return nil, fmt.Errorf("inode %d %s fork btree: %w", in.Ino, which, err)
		}
	default:
		return nil, fmt.Errorf("inode %d %s fork format %d has no extents: %w", in.Ino, which, format, ErrCorrupt)
	}
	return w.out, nil
}

// root walks the btree root kept in the inode fork: level, record count, then keys and child
// pointers, the pointer array placed after as many keys as the fork could hold.
func (w *mapWalk) root(fork []byte) error {
	if len(fork) < 4 {
		return fmt.Errorf("root of %d bytes: %w", len(fork), ErrCorrupt)
	}
	level, n := int(be.Uint16(fork)), int(be.Uint16(fork[2:]))
	maxrecs := (len(fork) - 4) / 16
	if level == 0 || level > 9 || n == 0 || n > maxrecs {
		return fmt.Errorf("root level %d with %d of %d records: %w", level, n, maxrecs, ErrCorrupt)
	}
	return w.children(fork[4:], fork[4+8*maxrecs:], n, level)
}

func (w *mapWalk) children(keys, ptrs []byte, n, level int) error {
	buf := make([]byte, w.f.blockSize)
	var prev uint64
	for k := range n {
		key := be.Uint64(keys[8*k:])
		if k > 0 && key <= prev {
			return fmt.Errorf("btree keys out of order: %w", ErrCorrupt)
		}
		prev = key
		if key >= w.limit {
			break // everything below this key is past the range of interest
		}
		ptr := be.Uint64(ptrs[8*k:])
		if w.seen[ptr] {
			return fmt.Errorf("btree block %#x reached twice: %w", ptr, ErrCorrupt)
		}
		w.seen[ptr] = true
		if w.budget == 0 {
			return fmt.Errorf("more btree blocks than the inode owns: %w", ErrCorrupt)
		}
		w.budget--
		if err := w.f.readBlock(ptr, buf); err != nil {
			return err
		}
		if err := w.node(buf, level-1); err != nil {
			return err
		}
	}
	return nil
}

func (w *mapWalk) node(b []byte, level int) error {
	magic, hdr := uint32(bmapMagic), 24
	if w.f.crc {
		magic, hdr = bmap3Magic, 72
	}
	if be.Uint32(b) != magic {
		return fmt.Errorf("btree block magic %#x: %w", be.Uint32(b), ErrCorrupt)
	}
	if w.f.crc && be.Uint64(b[56:]) != w.ino {
		return fmt.Errorf("btree block owned by inode %d: %w", be.Uint64(b[56:]), ErrCorrupt)
	}
	lvl, n := int(be.Uint16(b[4:])), int(be.Uint16(b[6:]))
	maxrecs := (len(b) - hdr) / 16
	if lvl != level || n > maxrecs {
		return fmt.Errorf("btree block level %d (want %d) with %d of %d records: %w", lvl, level, n, maxrecs, ErrCorrupt)
	}
	if level == 0 {
		for k := range n {
			if err := w.add(decodeExtent(b[hdr+16*k:])); err != nil {
				return err
			}
		}
		return nil
	}
	return w.children(b[hdr:], b[hdr+8*maxrecs:], n, level)
}

func (f *FS) fileBlocks(size uint64) uint64 {
	return (size + uint64(f.blockSize) - 1) >> f.blockLog
}

// Open returns the content of a regular file (or any inode with data): holes and unwritten
// extents read as zeros, and exactly Size bytes are returned.
func (f *FS) Open(in *Inode) (io.Reader, error) {
	if in.format == fmtLocal {
		if in.Size > uint64(len(in.dataFork)) {
			return nil, fmt.Errorf("inode %d: %d bytes of local data in a %d-byte fork: %w", in.Ino, in.Size, len(in.dataFork), ErrCorrupt)
		}
		return &byteReader{b: in.dataFork[:in.Size]}, nil
	}
	if in.format == fmtDev {
		return &byteReader{}, nil
	}
	m, err := f.forkMap(in, false, f.fileBlocks(in.Size))
	if err != nil {
		return nil, err
	}
	return &fileReader{f: f, ext: m, size: int64(in.Size)}, nil
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

type fileReader struct {
	f    *FS
	ext  []extent
	size int64
	pos  int64
	i    int
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	bs := r.f.blockSize
	if rem := r.size - r.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	lblk := uint64(r.pos / bs)
	for r.i < len(r.ext) && r.ext[r.i].logical+r.ext[r.i].length <= lblk {
		r.i++
	}
	var n int
	if r.i >= len(r.ext) || r.ext[r.i].logical > lblk {
		// A hole, up to the next extent (or EOF).
		end := r.size
		if r.i < len(r.ext) {
			end = min(end, int64(r.ext[r.i].logical)*bs)
		}
		n = int(min(int64(len(p)), end-r.pos))
		clear(p[:n])
	} else {
		e := r.ext[r.i]
		end := min(r.size, int64(e.logical+e.length)*bs)
		n = int(min(int64(len(p)), end-r.pos))
		if e.unwritten {
			clear(p[:n])
		} else {
			start, err := r.f.daddr(e.physical)
			if err != nil {
				return 0, err
			}
			phys := start + (r.pos - int64(e.logical)*bs)
			if _, err := r.f.r.ReadAt(p[:n], phys); err != nil {
				return 0, fmt.Errorf("read data at %d: %w", phys, err)
			}
		}
	}
	r.pos += int64(n)
	return n, nil
}

// readLogical reads n consecutive logical blocks of a fork, starting at lblk, into buf; every
// block must be mapped (directory and attribute blocks have no holes).
func (f *FS) readLogical(ext []extent, lblk uint64, buf []byte) error {
	n := uint64(len(buf)) >> f.blockLog
	for k := uint64(0); k < n; k++ {
		e, ok := findExtent(ext, lblk+k)
		if !ok || e.unwritten {
			return fmt.Errorf("logical block %d not mapped: %w", lblk+k, ErrCorrupt)
		}
		if err := f.readBlock(e.physical+(lblk+k-e.logical), buf[k<<f.blockLog:(k+1)<<f.blockLog]); err != nil {
			return err
		}
	}
	return nil
}

// findExtent returns the extent holding logical block lblk (binary search: ext is sorted).
func findExtent(ext []extent, lblk uint64) (extent, bool) {
	lo, hi := 0, len(ext)
	for lo < hi {
		m := (lo + hi) / 2
		switch e := ext[m]; {
		case lblk < e.logical:
			hi = m
		case lblk >= e.logical+e.length:
			lo = m + 1
		default:
			return e, true
		}
	}
	return extent{}, false
}

// Readlink returns a symlink's target exactly as stored (absolute targets included: the caller
// must never follow them on the host). Short targets live in the inode; longer ones in blocks
// that on v5 each start with a header naming the inode and the byte range they hold.
func (f *FS) Readlink(in *Inode) (string, error) {
	if in.Type() != S_IFLNK {
		return "", fmt.Errorf("inode %d is not a symlink", in.Ino)
	}
	if in.Size == 0 || in.Size > symlinkMaxLen {
		return "", fmt.Errorf("symlink inode %d of %d bytes: %w", in.Ino, in.Size, ErrCorrupt)
	}
	if in.format == fmtLocal {
		if in.Size > uint64(len(in.dataFork)) {
			return "", fmt.Errorf("symlink inode %d: %d bytes in a %d-byte fork: %w", in.Ino, in.Size, len(in.dataFork), ErrCorrupt)
		}
		return string(in.dataFork[:in.Size]), nil
	}
	if !f.crc {
		rd, err := f.Open(in)
		if err != nil {
			return "", err
		}
		b := make([]byte, in.Size)
		if _, err := io.ReadFull(rd, b); err != nil {
			return "", fmt.Errorf("read symlink inode %d: %w", in.Ino, err)
		}
		return string(b), nil
	}
	const hdr = 56
	per := uint64(f.blockSize) - hdr
	nblk := (in.Size + per - 1) / per
	m, err := f.forkMap(in, false, nblk)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, in.Size)
	buf := make([]byte, f.blockSize)
	for k := uint64(0); k < nblk; k++ {
		if err := f.readLogical(m, k, buf); err != nil {
			return "", fmt.Errorf("symlink inode %d: %w", in.Ino, err)
		}
		off, n, owner := uint64(be.Uint32(buf[4:])), uint64(be.Uint32(buf[8:])), be.Uint64(buf[32:])
		if be.Uint32(buf) != symlinkMagic || owner != in.Ino || off != uint64(len(out)) || n > per || off+n > in.Size {
			return "", fmt.Errorf("symlink inode %d block %d header: %w", in.Ino, k, ErrCorrupt)
		}
		out = append(out, buf[hdr:hdr+n]...)
	}
	if uint64(len(out)) != in.Size {
		return "", fmt.Errorf("symlink inode %d: %d of %d bytes: %w", in.Ino, len(out), in.Size, ErrCorrupt)
	}
	return string(out), nil
}
