package ext4

import (
	"encoding/binary"
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
	flagEncrypt    = 0x800
	flagHugeFile   = 0x40000
	flagExtents    = 0x80000
	flagEAInode    = 0x200000
	flagInlineData = 0x10000000
)

// Inode is the metadata of one file, decoded from its on-disk record.
type Inode struct {
	Ino   uint32
	Mode  uint16 // type and permission bits, as in st_mode
	UID   uint32
	GID   uint32
	Size  uint64
	Links uint16
	Flags uint32
	Mtime time.Time
	Atime time.Time
	Ctime time.Time

	blocks  uint64 // i_blocks in 512-byte units (or fs blocks with huge_file)
	fileACL uint64
	block   [60]byte
	raw     []byte
}

// Type returns the S_IFMT bits.
func (i *Inode) Type() uint16 { return i.Mode & S_IFMT }

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Type() == S_IFDIR }

// Perm returns the permission bits including setuid, setgid and sticky.
func (i *Inode) Perm() uint16 { return i.Mode & 0o7777 }

// Inode reads inode ino.
func (f *FS) Inode(ino uint32) (*Inode, error) {
	raw, err := f.rawInode(ino)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	in := &Inode{Ino: ino, raw: raw}
	in.Mode = le.Uint16(raw[0:])
	in.UID = uint32(le.Uint16(raw[2:])) | uint32(le.Uint16(raw[120:]))<<16
	in.GID = uint32(le.Uint16(raw[24:])) | uint32(le.Uint16(raw[122:]))<<16
	in.Size = uint64(le.Uint32(raw[4:])) | uint64(le.Uint32(raw[108:]))<<32
	in.Links = le.Uint16(raw[26:])
	in.Flags = le.Uint32(raw[32:])
	in.blocks = uint64(le.Uint32(raw[28:])) | uint64(le.Uint16(raw[116:]))<<32
	in.fileACL = uint64(le.Uint32(raw[104:])) | uint64(le.Uint16(raw[118:]))<<32
	copy(in.block[:], raw[40:100])
	extra := int64(0)
	if f.inodeSize > 128 {
		extra = int64(le.Uint16(raw[128:]))
		if extra > f.inodeSize-128 || extra%4 != 0 {
			return nil, fmt.Errorf("inode %d extra size %d: %w", ino, extra, ErrCorrupt)
		}
	}
	// Timestamps: 32-bit signed seconds; with a large inode, the *_extra word adds two epoch
	// bits and the nanoseconds.
	ts := func(base, extraOff int64) time.Time {
		sec := int64(int32(le.Uint32(raw[base:])))
		var nsec int64
		if 128+extra >= extraOff+4 {
			x := le.Uint32(raw[extraOff:])
			sec += int64(x&3) << 32
			nsec = int64(x >> 2)
			if nsec > 999999999 {
				nsec = 0
			}
		}
		return time.Unix(sec, nsec)
	}
	in.Ctime = ts(12, 132)
	in.Mtime = ts(16, 136)
	in.Atime = ts(8, 140)
	if in.Flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("inode %d is encrypted (fscrypt): %w", ino, ErrUnsupported)
	}
	return in, nil
}

// Device returns the major and minor numbers of a character or block device inode.
func (i *Inode) Device() (major, minor uint32) {
	le := binary.LittleEndian
	if old := le.Uint32(i.block[0:]); old != 0 {
		return (old >> 8) & 0xff, old & 0xff
	}
	n := le.Uint32(i.block[4:])
	return (n >> 8) & 0xfff, (n & 0xff) | ((n >> 12) & 0xfff00)
}

// extent maps length blocks of a file starting at logical block to physical blocks; unwritten
// extents (preallocated with fallocate) read as zeros, as do logical ranges with no extent.
type extent struct {
	logical, physical, length uint64
	unwritten                 bool
}

func (f *FS) fileBlocks(in *Inode) uint64 {
	return (in.Size + uint64(f.blockSize) - 1) / uint64(f.blockSize)
}

// mapping lists the extents of a file within its size, in logical order.
func (f *FS) mapping(in *Inode) ([]extent, error) {
	if in.Flags&flagExtents != 0 {
		return f.extentMap(in)
	}
	return f.blockMap(in)
}

func (f *FS) extentMap(in *Inode) ([]extent, error) {
	w := extentWalk{f: f, in: in, limit: f.fileBlocks(in), budget: f.fileBlocks(in) + 64}
	if err := w.node(in.block[:], -1); err != nil {
		return nil, fmt.Errorf("inode %d extent tree: %w", in.Ino, err)
	}
	return w.out, nil
}

type extentWalk struct {
	f      *FS
	in     *Inode
	limit  uint64 // logical blocks within i_size
	next   uint64 // lowest logical block the next extent may start at
	budget uint64 // tree nodes we may still visit: bounds fan-out tricks with shared subtrees
	out    []extent
}

func (w *extentWalk) node(b []byte, wantDepth int) error {
	le := binary.LittleEndian
	if len(b) < 12 || le.Uint16(b[0:]) != 0xF30A {
		return fmt.Errorf("bad extent header: %w", ErrCorrupt)
	}
	entries, maxEntries, depth := int(le.Uint16(b[2:])), int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	if entries > maxEntries || 12+12*maxEntries > len(b) || depth > 5 || (wantDepth >= 0 && depth != wantDepth) {
		return fmt.Errorf("extent node: %d/%d entries, depth %d (want %d): %w", entries, maxEntries, depth, wantDepth, ErrCorrupt)
	}
	if w.budget == 0 {
		return fmt.Errorf("more extent tree nodes than the file has blocks: %w", ErrCorrupt)
	}
	w.budget--
	if depth == 0 {
		for k := range entries {
			e := b[12+12*k:]
			lblk := uint64(le.Uint32(e[0:]))
			n := uint64(le.Uint16(e[4:]))
			unwritten := n > 32768
			if unwritten {
				n -= 32768
			}
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if n == 0 || lblk < w.next {
				return fmt.Errorf("extent at logical %d (len %d) overlaps or is empty: %w", lblk, n, ErrCorrupt)
			}
			if phys+n > w.f.blocksCount || phys+n < phys {
				return fmt.Errorf("extent %d+%d beyond the %d-block filesystem: %w", phys, n, w.f.blocksCount, ErrCorrupt)
			}
			w.next = lblk + n
			if lblk >= w.limit { // preallocated past EOF (fallocate KEEP_SIZE): not file content
				continue
			}
			w.out = append(w.out, extent{logical: lblk, physical: phys, length: min(n, w.limit-lblk), unwritten: unwritten})
		}
		return nil
	}
	buf := make([]byte, w.f.blockSize)
	var prev uint64
	for k := range entries {
		e := b[12+12*k:]
		lblk := uint64(le.Uint32(e[0:]))
		if k > 0 && lblk <= prev {
			return fmt.Errorf("extent index out of order: %w", ErrCorrupt)
		}
		prev = lblk
		if lblk >= w.limit {
			break
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if err := w.f.readBlock(child, buf); err != nil {
			return err
		}
		if err := w.node(buf, depth-1); err != nil {
			return err
		}
	}
	return nil
}

// blockMap reads the ext2/3 direct and (double, triple) indirect block pointers.
func (f *FS) blockMap(in *Inode) ([]extent, error) {
	limit := f.fileBlocks(in)
	var out []extent
	add := func(lblk, phys uint64) error {
		if phys >= f.blocksCount {
			return fmt.Errorf("inode %d block %d beyond the filesystem: %w", in.Ino, phys, ErrCorrupt)
		}
		if k := len(out) - 1; k >= 0 && out[k].logical+out[k].length == lblk && out[k].physical+out[k].length == phys {
			out[k].length++
			return nil
		}
		out = append(out, extent{logical: lblk, physical: phys, length: 1})
		return nil
	}
	le := binary.LittleEndian
	per := uint64(f.blockSize / 4)
	// Every non-zero pointer is a block the file owns, and i_blocks counts them: pointer blocks
	// that reference each other over and over would otherwise cost per³ iterations.
	budget := in.blocks/uint64(f.blockSize/512) + 16
	if in.Flags&flagHugeFile != 0 {
		budget = in.blocks + 16
	}
	var walk func(ptr uint64, level int, base uint64) error
	walk = func(ptr uint64, level int, base uint64) error {
		if ptr == 0 || base >= limit {
			return nil
		}
		if budget == 0 {
			return fmt.Errorf("inode %d maps more blocks than it owns: %w", in.Ino, ErrCorrupt)
		}
		budget--
		if level == 0 {
			return add(base, ptr)
		}
		buf := make([]byte, f.blockSize)
		if err := f.readBlock(ptr, buf); err != nil {
			return err
		}
		span := uint64(1)
		for range level - 1 {
			span *= per
		}
		for k := uint64(0); k < per; k++ {
			if err := walk(uint64(le.Uint32(buf[4*k:])), level-1, base+k*span); err != nil {
				return err
			}
		}
		return nil
	}
	for k := uint64(0); k < 12; k++ {
		if err := walk(uint64(le.Uint32(in.block[4*k:])), 0, k); err != nil {
			return nil, err
		}
	}
	base := uint64(12)
	span := per
	for lvl := 1; lvl <= 3; lvl++ {
		if err := walk(uint64(le.Uint32(in.block[4*(11+lvl):])), lvl, base); err != nil {
			return nil, err
		}
		base += span
		span *= per
	}
	return out, nil
}

// Open returns the content of a regular file (or any inode with data): holes and unwritten
// extents read as zeros, and exactly Size bytes are returned.
func (f *FS) Open(in *Inode) (io.Reader, error) {
	if in.Flags&flagInlineData != 0 {
		b, err := f.inlineData(in)
		if err != nil {
			return nil, err
		}
		return &byteReader{b: b}, nil
	}
	m, err := f.mapping(in)
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
		// Hole up to the next extent (or EOF).
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
			phys := int64(e.physical)*bs + (r.pos - int64(e.logical)*bs)
			if _, err := r.f.r.ReadAt(p[:n], phys); err != nil {
				return 0, fmt.Errorf("read data at %d: %w", phys, err)
			}
		}
	}
	r.pos += int64(n)
	return n, nil
}

// inlineData returns the content of an inline_data inode: i_block, then the system.data xattr.
func (f *FS) inlineData(in *Inode) ([]byte, error) {
	if in.Size > 60+uint64(f.inodeSize)+uint64(f.blockSize) {
		return nil, fmt.Errorf("inode %d inline data of %d bytes: %w", in.Ino, in.Size, ErrCorrupt)
	}
	out := make([]byte, 0, in.Size)
	out = append(out, in.block[:min(60, in.Size)]...)
	if in.Size > 60 {
		xs, err := f.rawXattrs(in, true)
		if err != nil {
			return nil, err
		}
		for _, x := range xs {
			if x.Name == "system.data" {
				out = append(out, x.Value...)
			}
		}
		if uint64(len(out)) < in.Size {
			return nil, fmt.Errorf("inode %d inline data shorter (%d) than its size %d: %w", in.Ino, len(out), in.Size, ErrCorrupt)
		}
	}
	return out[:in.Size], nil
}

// Readlink returns a symlink's target exactly as stored (absolute targets included: the caller
// must never follow them on the host).
func (f *FS) Readlink(in *Inode) (string, error) {
	if in.Type() != S_IFLNK {
		return "", fmt.Errorf("inode %d is not a symlink", in.Ino)
	}
	if in.Size == 0 || in.Size > 4096 {
		return "", fmt.Errorf("symlink inode %d of %d bytes: %w", in.Ino, in.Size, ErrCorrupt)
	}
	eaBlocks := uint64(0)
	if in.fileACL != 0 {
		eaBlocks = uint64(f.blockSize / 512)
		if in.Flags&flagHugeFile != 0 {
			eaBlocks = 1
		}
	}
	if in.Flags&flagInlineData == 0 && in.Flags&flagEAInode == 0 && in.blocks <= eaBlocks {
		if in.Size >= 60 {
			return "", fmt.Errorf("fast symlink inode %d of %d bytes: %w", in.Ino, in.Size, ErrCorrupt)
		}
		return string(in.block[:in.Size]), nil
	}
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
