package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// ReadDir calls fn for every entry of directory in except "." and "..", in on-disk order,
// streaming one block at a time (a directory of a million entries costs one block of memory).
// Names containing '/' or NUL, or empty, are reported as ErrCorrupt: they cannot be a path
// component and would let an image write outside its root. If fn returns an error, ReadDir
// stops and returns it.
func (f *FS) ReadDir(in *Inode, fn func(name string, ino uint32) error) error {
	if !in.IsDir() {
		return fmt.Errorf("inode %d is not a directory", in.Ino)
	}
	if in.Flags&flagInlineData != 0 {
		b, err := f.inlineData(in)
		if err != nil {
			return err
		}
		if len(b) < 4 {
			return fmt.Errorf("inline directory %d: %w", in.Ino, ErrCorrupt)
		}
		// The first 4 bytes are the parent inode; then dirents in the rest of i_block and in
		// system.data, as two separately terminated areas.
		if err := f.dirBlock(in, b[4:min(60, len(b))], fn); err != nil {
			return err
		}
		if len(b) > 60 {
			return f.dirBlock(in, b[60:], fn)
		}
		return nil
	}
	if in.Size%uint64(f.blockSize) != 0 {
		return fmt.Errorf("directory %d size %d not a multiple of the block size: %w", in.Ino, in.Size, ErrCorrupt)
	}
	r, err := f.Open(in)
	if err != nil {
		return err
	}
	blk := make([]byte, f.blockSize)
	for {
		if _, err := io.ReadFull(r, blk); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read directory %d: %w", in.Ino, err)
		}
		if err := f.dirBlock(in, blk, fn); err != nil {
			return err
		}
	}
}

func (f *FS) dirBlock(in *Inode, b []byte, fn func(string, uint32) error) error {
	le := binary.LittleEndian
	filetype := f.incompat&incompatFiletype != 0
	for off := 0; off+8 <= len(b); {
		ino := le.Uint32(b[off:])
		recLen := int(le.Uint16(b[off+4:]))
		if f.blockSize == 65536 && (recLen == 0 || recLen == 65535) {
			recLen = 65536
		}
		nameLen := int(b[off+6])
		if !filetype {
			nameLen |= int(b[off+7]) << 8
		}
		if recLen < 8 || recLen%4 != 0 || off+recLen > len(b) || 8+nameLen > recLen {
			return fmt.Errorf("directory %d: entry at %d (rec_len %d, name_len %d): %w", in.Ino, off, recLen, nameLen, ErrCorrupt)
		}
		if ino != 0 {
			name := b[off+8 : off+8+nameLen]
			switch {
			case nameLen == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0:
				return fmt.Errorf("directory %d: invalid name %q: %w", in.Ino, name, ErrCorrupt)
			case string(name) == "." || string(name) == "..":
			default:
				if err := fn(string(name), ino); err != nil {
					return err
				}
			}
		}
		off += recLen
	}
	return nil
}

var errFound = errors.New("found")

// lookupChild finds name in directory dir.
func (f *FS) lookupChild(dir *Inode, name string) (uint32, error) {
	var found uint32
	err := f.ReadDir(dir, func(n string, ino uint32) error {
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
	return f.lookup(path, 0)
}

func (f *FS) lookup(path string, hops int) (*Inode, error) {
	cur, err := f.Inode(RootIno)
	if err != nil {
		return nil, err
	}
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
				cur, stack = mustRoot(f), nil
				if cur == nil {
					return nil, fmt.Errorf("read root inode: %w", ErrCorrupt)
				}
			}
			parts, i = rest, -1
			continue
		}
		stack = append(stack, cur)
		cur = next
	}
	return cur, nil
}

func mustRoot(f *FS) *Inode {
	in, err := f.Inode(RootIno)
	if err != nil {
		return nil
	}
	return in
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
