package images

import (
	"fmt"
	"io"
	"math"

	"github.com/nova-container-agent/nova-container-agent/images/ext4"
	"github.com/nova-container-agent/nova-container-agent/images/rootfs"
)

// extFS presents an ext4.FS as the rootfs walker's FS.
type extFS struct{ fs *ext4.FS }

var _ rootfs.FS = extFS{}

func (e extFS) node(in *ext4.Inode) rootfs.Node {
	n := rootfs.Node{Ino: uint64(in.Ino), Mode: uint32(in.Mode), UID: in.UID, GID: in.GID, Size: int64(in.Size),
		Links: uint32(in.Links), Mtime: in.Mtime, Sys: in}
	if t := in.Type(); t == ext4.S_IFCHR || t == ext4.S_IFBLK {
		n.Devmajor, n.Devminor = in.Device()
	}
	if in.Size > math.MaxInt64 {
		n.Size = -1 // rejected by the walker
	}
	return n
}

func (e extFS) inode(n rootfs.Node) (*ext4.Inode, error) {
	in, ok := n.Sys.(*ext4.Inode)
	if !ok {
		return nil, fmt.Errorf("node %d does not come from this ext4 filesystem", n.Ino)
	}
	return in, nil
}

func (e extFS) Root() (rootfs.Node, error) { return e.Stat(ext4.RootIno) }

func (e extFS) Stat(ino uint64) (rootfs.Node, error) {
	if ino > math.MaxUint32 {
		return rootfs.Node{}, fmt.Errorf("inode %d: %w", ino, ext4.ErrCorrupt)
	}
	in, err := e.fs.Inode(uint32(ino))
	if err != nil {
		return rootfs.Node{}, err
	}
	return e.node(in), nil
}

func (e extFS) ReadDir(n rootfs.Node, fn func(name string, ino uint64) error) error {
	in, err := e.inode(n)
	if err != nil {
		return err
	}
	return e.fs.ReadDir(in, func(name string, ino uint32) error { return fn(name, uint64(ino)) })
}

func (e extFS) Open(n rootfs.Node) (io.Reader, error) {
	in, err := e.inode(n)
	if err != nil {
		return nil, err
	}
	return e.fs.Open(in)
}

func (e extFS) Readlink(n rootfs.Node) (string, error) {
	in, err := e.inode(n)
	if err != nil {
		return "", err
	}
	return e.fs.Readlink(in)
}

func (e extFS) Xattrs(n rootfs.Node) ([]rootfs.Xattr, error) {
	in, err := e.inode(n)
	if err != nil {
		return nil, err
	}
	xs, err := e.fs.Xattrs(in)
	if err != nil {
		return nil, err
	}
	out := make([]rootfs.Xattr, len(xs))
	for i, x := range xs {
		out[i] = rootfs.Xattr{Name: x.Name, Value: x.Value}
	}
	return out, nil
}

func (e extFS) ReadFile(path string, limit int64) ([]byte, error) { return e.fs.ReadFile(path, limit) }

func (e extFS) Lookup(path string) (rootfs.Node, error) {
	in, err := e.fs.Lookup(path)
	if err != nil {
		return rootfs.Node{}, err
	}
	return e.node(in), nil
}

func (e extFS) Size() int64 { return e.fs.Size() }
