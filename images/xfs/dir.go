package xfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

const (
	dirBlockMagic  = 0x58443242 // "XD2B": single-block directory (data + leaf in one block)
	dirDataMagic   = 0x58443244 // "XD2D": data block of a leaf or node directory
	dir3BlockMagic = 0x58444233 // "XDB3": v5 forms of the above
	dir3DataMagic  = 0x58444433 // "XDD3"

	dirFreeTag = 0xFFFF
	// dirLeafOffset is the byte offset in a directory where the hash index (leaf and free
	// blocks) starts; data blocks, the only ones holding entries, are all below it.
	dirLeafOffset = 32 << 30
)

// ReadDir calls fn for every entry of directory in except "." and "..", in on-disk order,
// streaming one directory block at a time. Only the data blocks are read: the hash index
// (leaf, node and free blocks) is not needed to enumerate. Names containing '/' or NUL, or
// empty, are reported as ErrCorrupt: they cannot be a path component and would let an image
// write outside its root. If fn returns an error, ReadDir stops and returns it.
func (f *FS) ReadDir(in *Inode, fn func(name string, ino uint64) error) error {
	if !in.IsDir() {
		return fmt.Errorf("inode %d is not a directory", in.Ino)
	}
	if in.format == fmtLocal {
		return f.shortDir(in, fn)
	}
	m, err := f.forkMap(in, false, dirLeafOffset>>f.blockLog)
	if err != nil {
		return err
	}
	per := uint64(1) << f.dirBlkLog // filesystem blocks per directory block
	blk := make([]byte, f.blockSize<<f.dirBlkLog)
	done := uint64(0) // logical blocks below this are read
	for _, e := range m {
		for d := max(e.logical&^(per-1), done); d < e.logical+e.length; d += per {
			if err := f.readLogical(m, d, blk); err != nil {
				return fmt.Errorf("directory %d block %d: %w", in.Ino, d, err)
			}
			if err := f.dirBlock(in, blk, fn); err != nil {
				return err
			}
			done = d + per
		}
	}
	return nil
}

// shortDir reads a directory kept in the inode: a count, the width of inode numbers (4 bytes,
// or 8 when any needs it), the parent, then entries of name length, a 2-byte hash-order offset,
// the name, the file type byte (ftype) and the inode number.
func (f *FS) shortDir(in *Inode, fn func(string, uint64) error) error {
	b := in.dataFork
	if in.Size > uint64(len(b)) || in.Size < 6 {
		return fmt.Errorf("short-form directory %d of %d bytes in a %d-byte fork: %w", in.Ino, in.Size, len(b), ErrCorrupt)
	}
	b = b[:in.Size]
	count, wide := int(b[0]), b[1] != 0
	inoLen := 4
	if wide {
		inoLen = 8
	}
	off := 2 + inoLen
	ft := 0
	if f.ftype {
		ft = 1
	}
	for k := 0; k < count; k++ {
		if off+3 > len(b) {
			return fmt.Errorf("short-form directory %d: entry %d past the end: %w", in.Ino, k, ErrCorrupt)
		}
		nameLen := int(b[off])
		end := off + 3 + nameLen + ft + inoLen
		if end > len(b) {
			return fmt.Errorf("short-form directory %d: entry %d past the end: %w", in.Ino, k, ErrCorrupt)
		}
		name := b[off+3 : off+3+nameLen]
		ib := b[off+3+nameLen+ft : end]
		var ino uint64
		if wide {
			ino = be.Uint64(ib) & (1<<56 - 1)
		} else {
			ino = uint64(be.Uint32(ib))
		}
		if err := emit(in, name, ino, fn); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func emit(in *Inode, name []byte, ino uint64, fn func(string, uint64) error) error {
	switch {
	case len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0:
		return fmt.Errorf("directory %d: invalid name %q: %w", in.Ino, name, ErrCorrupt)
	case string(name) == "." || string(name) == "..":
		return nil
	}
	return fn(string(name), ino)
}

// dirBlock parses the entries of one directory data block: a header, then a run of entries
// that are either free space (tag 0xFFFF, length) or a name (inode, name length, name, file
// type, padding to 8 bytes, the entry's own offset as a 2-byte tag). A single-block directory
// ends with its hash index: leaf entries and a tail counting them.
func (f *FS) dirBlock(in *Inode, b []byte, fn func(string, uint64) error) error {
	hdr, end := 16, len(b)
	magic := be.Uint32(b)
	block := false
	switch {
	case f.crc && (magic == dir3BlockMagic || magic == dir3DataMagic):
		hdr, block = 64, magic == dir3BlockMagic
		if owner := be.Uint64(b[40:]); owner != in.Ino {
			return fmt.Errorf("directory %d: data block owned by inode %d: %w", in.Ino, owner, ErrCorrupt)
		}
	case !f.crc && (magic == dirBlockMagic || magic == dirDataMagic):
		block = magic == dirBlockMagic
	default:
		return fmt.Errorf("directory %d: data block magic %#x: %w", in.Ino, magic, ErrCorrupt)
	}
	if block {
		count := int(be.Uint32(b[len(b)-8:]))
		end = len(b) - 8 - 8*count
		if count < 0 || end < hdr {
			return fmt.Errorf("directory %d: %d leaf entries in its block: %w", in.Ino, count, ErrCorrupt)
		}
	}
	ft := 0
	if f.ftype {
		ft = 1
	}
	for off := hdr; off < end; {
		if off+8 > end {
			return fmt.Errorf("directory %d: entry at %d past the data: %w", in.Ino, off, ErrCorrupt)
		}
		if be.Uint16(b[off:]) == dirFreeTag {
			n := int(be.Uint16(b[off+2:]))
			if n < 8 || n%8 != 0 || off+n > end {
				return fmt.Errorf("directory %d: free space of %d bytes at %d: %w", in.Ino, n, off, ErrCorrupt)
			}
			off += n
			continue
		}
		ino := be.Uint64(b[off:])
		nameLen := int(b[off+8])
		n := (8 + 1 + nameLen + ft + 2 + 7) &^ 7
		if off+n > end || int(be.Uint16(b[off+n-2:])) != off {
			return fmt.Errorf("directory %d: entry at %d (name length %d): %w", in.Ino, off, nameLen, ErrCorrupt)
		}
		if err := emit(in, b[off+9:off+9+nameLen], ino, fn); err != nil {
			return err
		}
		off += n
	}
	return nil
}

var errFound = errors.New("found")

// lookupChild finds name in directory dir.
func (f *FS) lookupChild(dir *Inode, name string) (uint64, error) {
	var found uint64
	err := f.ReadDir(dir, func(n string, ino uint64) error {
		if n == name {
			found = ino
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return found, nil
	}
	if err != nil {
		return 0, err
	}
	return 0, fs.ErrNotExist
}

// Lookup resolves an absolute path inside the filesystem, following symlinks as if the
// filesystem were the root (absolute targets and ".." stop at its root), at most 40 of them.
func (f *FS) Lookup(path string) (*Inode, error) {
	root, err := f.Inode(f.rootIno)
	if err != nil {
		return nil, err
	}
	cur, hops := root, 0
	var stack []*Inode // ancestors of cur, for ".."
	parts := strings.Split(path, "/")
	for i := 0; i < len(parts); i++ {
		p := parts[i]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
			continue
		}
		if !cur.IsDir() {
			return nil, fmt.Errorf("lookup %s: %s: %w", path, p, fs.ErrNotExist)
		}
		ino, err := f.lookupChild(cur, p)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", path, err)
		}
		next, err := f.Inode(ino)
		if err != nil {
			return nil, err
		}
		if next.Type() == S_IFLNK {
			hops++
			if hops > 40 {
				return nil, fmt.Errorf("lookup %s: too many symlinks", path)
			}
			target, err := f.Readlink(next)
			if err != nil {
				return nil, err
			}
			rest := append(strings.Split(target, "/"), parts[i+1:]...)
			if strings.HasPrefix(target, "/") {
				cur, stack = root, nil
			}
			parts, i = rest, -1
			continue
		}
		stack = append(stack, cur)
		cur = next
	}
	return cur, nil
}

// ReadFile returns the content of the file at path (symlinks followed inside the filesystem),
// refusing files larger than limit bytes.
func (f *FS) ReadFile(path string, limit int64) ([]byte, error) {
	in, err := f.Lookup(path)
	if err != nil {
		return nil, err
	}
	if in.Type() != S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if int64(in.Size) > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d-byte limit", path, in.Size, limit)
	}
	r, err := f.Open(in)
	if err != nil {
		return nil, err
	}
	b := make([]byte, in.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
