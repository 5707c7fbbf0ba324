package images

import (
	"errors"
	"fmt"
	"io"

	"github.com/nova-container-agent/nova-container-agent/images/rootfs"
	"github.com/nova-container-agent/nova-container-agent/images/xfs"
)

// xfsFS presents an xfs.FS as the rootfs walker's FS and as a root candidate.
type xfsFS struct{ fs *xfs.FS }

var _ rootFS = xfsFS{}

// openXFS opens the XFS filesystem filling r (RHEL, CentOS, Rocky, Alma, Oracle Linux roots).
func openXFS(r io.ReaderAt, size int64) (rootFS, error) {
	fsys, err := xfs.Open(r, size)
	if err != nil {
		return nil, xfsFS{}.Classify(fmt.Errorf("open xfs: %w", err))
	}
	return xfsFS{fsys}, nil
}

func (x xfsFS) Kind() string       { return "xfs" }
func (x xfsFS) UUID() string       { return x.fs.UUID() }
func (x xfsFS) Warnings() []string { return nil }

// Classify adds the package-boundary sentinel matching an xfs error; others go through the
// common classification (rootfs.ErrUnsafe and the like).
func (x xfsFS) Classify(err error) error {
	switch {
	case errors.Is(err, ErrInvalidImage), errors.Is(err, ErrUnsupportedImage):
		return err
	case errors.Is(err, xfs.ErrCorrupt), errors.Is(err, xfs.ErrNotXFS):
		return fmt.Errorf("%w: %w", ErrInvalidImage, err)
	case errors.Is(err, xfs.ErrUnsupported):
		return fmt.Errorf("%w: %w", ErrUnsupportedImage, err)
	}
	return classify(err)
}

// ParallelReads lets the walker read a few files at once: xfs.FS is safe for concurrent use and
// reads through an io.ReaderAt.
func (xfsFS) ParallelReads() int { return 4 }

func (x xfsFS) node(in *xfs.Inode) rootfs.Node {
	n := rootfs.Node{Ino: in.Ino, Mode: uint32(in.Mode), UID: in.UID, GID: in.GID, Size: int64(in.Size),
		Links: in.Links, Mtime: in.Mtime, Sys: in}
	if t := in.Type(); t == xfs.S_IFCHR || t == xfs.S_IFBLK {
		n.Devmajor, n.Devminor = in.Device()
	}
	return n
}

func (x xfsFS) inode(n rootfs.Node) (*xfs.Inode, error) {
	in, ok := n.Sys.(*xfs.Inode)
	if !ok {
		return nil, fmt.Errorf("node %d does not come from this xfs filesystem", n.Ino)
	}
	return in, nil
}

func (x xfsFS) Root() (rootfs.Node, error) { return x.Stat(x.fs.RootIno()) }

func (x xfsFS) Stat(ino uint64) (rootfs.Node, error) {
	in, err := x.fs.Inode(ino)
	if err != nil {
		return rootfs.Node{}, err
	}
	return x.node(in), nil
}

func (x xfsFS) ReadDir(n rootfs.Node, fn func(name string, ino uint64) error) error {
	in, err := x.inode(n)
	if err != nil {
		return err
	}
	return x.fs.ReadDir(in, fn)
}

func (x xfsFS) Open(n rootfs.Node) (io.Reader, error) {
	in, err := x.inode(n)
	if err != nil {
		return nil, err
	}
	return x.fs.Open(in)
}

func (x xfsFS) Readlink(n rootfs.Node) (string, error) {
	in, err := x.inode(n)
	if err != nil {
		return "", err
	}
	return x.fs.Readlink(in)
}

func (x xfsFS) Xattrs(n rootfs.Node) ([]rootfs.Xattr, error) {
	in, err := x.inode(n)
	if err != nil {
		return nil, err
	}
	xs, err := x.fs.Xattrs(in)
	if err != nil {
		return nil, err
	}
	out := make([]rootfs.Xattr, len(xs))
	for i, a := range xs {
		out[i] = rootfs.Xattr{Name: a.Name, Value: a.Value}
	}
	return out, nil
}

func (x xfsFS) ReadFile(path string, limit int64) ([]byte, error) { return x.fs.ReadFile(path, limit) }

func (x xfsFS) Lookup(path string) (rootfs.Node, error) {
	in, err := x.fs.Lookup(path)
	if err != nil {
		return rootfs.Node{}, err
	}
	return x.node(in), nil
}

func (x xfsFS) Size() int64 { return x.fs.Size() }
