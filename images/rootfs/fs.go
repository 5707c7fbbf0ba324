package rootfs

import (
	"io"
	"time"
)

// File type bits of Node.Mode (S_IFMT), as in stat(2).
const (
	TypeMask    = 0xF000
	TypeSocket  = 0xC000
	TypeSymlink = 0xA000
	TypeRegular = 0x8000
	TypeBlock   = 0x6000
	TypeDir     = 0x4000
	TypeChar    = 0x2000
	TypeFifo    = 0x1000
)

// Node is the metadata of one inode, independent of the filesystem format.
type Node struct {
	Ino      uint64
	Mode     uint32 // type and permission bits
	UID, GID uint32
	Size     int64
	Links    uint32
	Mtime    time.Time
	Devmajor uint32
	Devminor uint32
	Sys      any // the filesystem's own inode, handed back to FS methods
}

// Xattr is an extended attribute in getxattr(2) form.
type Xattr struct {
	Name  string
	Value []byte
}

// FS is what the walker needs from a filesystem reader; images wraps ext4.FS into it, and an
// XFS reader could implement it too.
type FS interface {
	// Root returns the root directory.
	Root() (Node, error)
	// Stat returns inode ino.
	Stat(ino uint64) (Node, error)
	// ReadDir calls fn for each entry of directory n except "." and "..".
	ReadDir(n Node, fn func(name string, ino uint64) error) error
	// Open returns exactly n.Size bytes of content, holes as zeros.
	Open(n Node) (io.Reader, error)
	// Readlink returns a symlink's target as stored.
	Readlink(n Node) (string, error)
	// Xattrs returns the extended attributes of n.
	Xattrs(n Node) ([]Xattr, error)
	// ReadFile returns the content of an absolute path, symlinks resolved inside the filesystem.
	ReadFile(path string, limit int64) ([]byte, error)
	// Lookup resolves an absolute path, symlinks resolved inside the filesystem.
	Lookup(path string) (Node, error)
	// Size is the filesystem size in bytes; no file may claim more content than this.
	Size() int64
}
