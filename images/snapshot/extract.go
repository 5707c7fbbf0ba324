package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafeEntry marks a tar entry that would write outside the staging tree or through a
// symlink: an absolute name, a ".." component, a path whose parent is a symlink, or a hard link
// to such a path. The whole snapshot is refused; nothing outside the work directory is touched.
var ErrUnsafeEntry = errors.New("snapshot: unsafe tar entry")

// ErrBadTar marks a tar stream that cannot be read or has an entry type this package does not
// write (e.g. a GNU multi-volume continuation).
var ErrBadTar = errors.New("snapshot: invalid tar stream")

// mergeMode says what an extraction does when the path already exists.
type mergeMode int

const (
	// replaceExisting is tar semantics: a later entry replaces an earlier non-directory, and a
	// directory entry updates an existing directory's metadata.
	replaceExisting mergeMode = iota
	// keepExisting leaves an existing path (and its metadata) alone; used to merge the parts of
	// the original image the container adaptation removed without overriding the guest's files.
	keepExisting
)

// Stats counts what an extraction wrote; the filesystem is sized from it.
type Stats struct {
	Entries    int64 // tar entries applied
	Files      int64 // regular files created (hard links excluded)
	Dirs       int64
	Symlinks   int64
	HardLinks  int64
	Devices    int64 // character, block and FIFO nodes
	Xattrs     int64
	DataBytes  int64 // sum of regular file sizes
	Blocks4K   int64 // sum of regular file and long-symlink sizes rounded up to 4 KiB blocks
	Skipped    int64 // entries left out by keepExisting
	LongSymlns int64 // symlinks whose target does not fit in the inode (> 59 bytes)
}

func (s *Stats) add(o Stats) {
	s.Entries += o.Entries
	s.Files += o.Files
	s.Dirs += o.Dirs
	s.Symlinks += o.Symlinks
	s.HardLinks += o.HardLinks
	s.Devices += o.Devices
	s.Xattrs += o.Xattrs
	s.DataBytes += o.DataBytes
	s.Blocks4K += o.Blocks4K
	s.Skipped += o.Skipped
	s.LongSymlns += o.LongSymlns
}

// Inodes is the number of inodes the tree needs (hard links share one).
func (s Stats) Inodes() int64 { return s.Files + s.Dirs + s.Symlinks + s.Devices }

// tree is a staging directory written through directory file descriptors only: every path is
// resolved component by component with O_NOFOLLOW, so no entry of an untrusted tar can make us
// follow a symlink out of the tree, whatever order the entries come in.
type tree struct {
	dir    string
	root   int // O_DIRECTORY fd of dir
	owners bool
	// one-entry parent cache: tar streams list siblings together
	cacheDir string
	cacheFD  int
	dirTimes []dirTime
}

type dirTime struct {
	rel          string
	atime, mtime time.Time
}

func openTree(dir string, owners bool) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open staging directory %s: %w", dir, err)
	}
	return &tree{dir: dir, root: fd, owners: owners, cacheFD: -1}, nil
}

func (t *tree) Close() error {
	t.dropCache()
	return unix.Close(t.root)
}

func (t *tree) dropCache() {
	if t.cacheFD >= 0 {
		unix.Close(t.cacheFD)
	}
	t.cacheFD, t.cacheDir = -1, ""
}

// cleanName turns a tar member name into a relative slash path ("" is the root). Absolute names
// and ".." components are refused rather than cleaned: a well-formed export never has them.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafeEntry)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafeEntry, name)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in name %q", ErrUnsafeEntry, name)
	}
	var parts []string
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q has a .. component", ErrUnsafeEntry, name)
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, "/"), nil
}

func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// parent returns an fd of rel's parent directory (owned by the cache; do not close) and rel's
// last component. Missing parents are created 0755 root-owned, as tar does for implicit parents.
func (t *tree) parent(rel string) (int, string, error) { return t.parentOpt(rel, true) }

// lookupParent is parent without creating anything: a missing parent is ENOENT.
func (t *tree) lookupParent(rel string) (int, string, error) { return t.parentOpt(rel, false) }

func (t *tree) parentOpt(rel string, create bool) (int, string, error) {
	dir, base := splitRel(rel)
	if dir == "" {
		return t.root, base, nil
	}
	if t.cacheFD >= 0 && t.cacheDir == dir {
		return t.cacheFD, base, nil
	}
	t.dropCache()
	fd, err := unix.Dup(t.root)
	if err != nil {
		return -1, "", fmt.Errorf("dup staging fd: %w", err)
	}
	for c := range strings.SplitSeq(dir, "/") {
		nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				nfd, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, "", fmt.Errorf("%w: parent %q of %q is a symlink or not a directory", ErrUnsafeEntry, dir, rel)
		}
		if err != nil {
			return -1, "", fmt.Errorf("open parent %q of %q: %w", dir, rel, err)
		}
		fd = nfd
	}
	t.cacheFD, t.cacheDir = fd, dir
	return fd, base, nil
}

// lstat reports the entry at rel without following a final symlink; ok is false if it does
// not exist (or its parent does not).
func (t *tree) lstat(rel string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	if rel == "" {
		err := unix.Fstat(t.root, &st)
		return st, err == nil, err
	}
	dfd, base, err := t.lookupParent(rel)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

// readFile returns the content of the regular file at rel (at most limit bytes).
func (t *tree) readFile(rel string, limit int64) ([]byte, error) {
	dfd, base, err := t.lookupParent(rel)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", rel, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", rel, limit)
	}
	return b, nil
}

// rewriteFile replaces the content of the existing regular file rel, keeping its inode and so
// its owner, mode, xattrs and mtime (the mtime is put back).
func (t *tree) rewriteFile(rel string, content []byte) error {
	dfd, base, err := t.lookupParent(rel)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", rel)
	}
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restore mtime of %s: %w", rel, err)
	}
	return nil
}

// remove deletes rel (a non-directory, or an empty directory).
func (t *tree) remove(rel string, dir bool) error {
	dfd, base, err := t.lookupParent(rel)
	if err != nil {
		return err
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dfd, base, flags); err != nil {
		return fmt.Errorf("remove %s: %w", rel, err)
	}
	t.dropCache()
	return nil
}

// readDir lists the names in directory rel.
func (t *tree) readDir(rel string) ([]string, error) {
	var fd int
	var err error
	if rel == "" {
		fd, err = unix.Dup(t.root)
	} else {
		dfd, base, perr := t.lookupParent(rel)
		if perr != nil {
			return nil, perr
		}
		fd, err = unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", rel, err)
	}
	return names, nil
}

// entryFilter decides whether and how an entry is applied; it may consume body (then it must
// not apply the entry).
type entryFilter func(hdr *tar.Header, rel string, body io.Reader) (apply bool, mode mergeMode, err error)

// extract applies a tar stream to the tree. filter, if set, decides per entry. Directory times
// are set by finish, after all children exist.
func (t *tree) extract(ctx context.Context, r io.Reader, filter entryFilter) (Stats, error) {
	var st Stats
	tr := tar.NewReader(r)
	buf := make([]byte, 128<<10)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("%w: after %d entries: %w", ErrBadTar, st.Entries, err)
		}
		rel, err := cleanName(hdr.Name)
		if err != nil {
			return st, err
		}
		mode := replaceExisting
		if filter != nil {
			ok, m, err := filter(hdr, rel, tr)
			if err != nil {
				return st, err
			}
			if !ok {
				continue
			}
			mode = m
		}
		applied, err := t.entry(hdr, rel, tr, mode, buf, &st)
		if err != nil {
			return st, fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
		if applied {
			st.Entries++
		} else {
			st.Skipped++
		}
	}
}

func (t *tree) entry(hdr *tar.Header, rel string, body io.Reader, mode mergeMode, buf []byte, st *Stats) (bool, error) {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return false, nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return false, fmt.Errorf("%w: entry type %q not supported", ErrBadTar, hdr.Typeflag)
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return false, fmt.Errorf("%w: the root entry is not a directory", ErrUnsafeEntry)
		}
		if mode == keepExisting {
			return false, nil
		}
		if err := t.meta(t.root, ".", hdr, false); err != nil {
			return false, err
		}
		t.dirTimes = append(t.dirTimes, dirTime{"", hdr.AccessTime, hdr.ModTime})
		return true, nil
	}
	dfd, base, err := t.parent(rel)
	if err != nil {
		return false, err
	}
	var cur unix.Stat_t
	exists := true
	if err := unix.Fstatat(dfd, base, &cur, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		exists = false
	} else if err != nil {
		return false, fmt.Errorf("stat: %w", err)
	}
	isDir := exists && cur.Mode&unix.S_IFMT == unix.S_IFDIR
	if exists {
		if mode == keepExisting {
			return false, nil
		}
		switch {
		case hdr.Typeflag == tar.TypeDir && isDir:
			// an existing directory keeps its children and takes the entry's metadata
		case isDir:
			if err := unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR); err != nil {
				return false, fmt.Errorf("replace directory by %q entry: %w", hdr.Typeflag, err)
			}
			t.dropCache()
			if dfd, base, err = t.parent(rel); err != nil {
				return false, err
			}
		default:
			if err := unix.Unlinkat(dfd, base, 0); err != nil {
				return false, fmt.Errorf("replace: %w", err)
			}
		}
	}
	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !isDir {
			if err := unix.Mkdirat(dfd, base, 0o700); err != nil {
				return false, fmt.Errorf("mkdir: %w", err)
			}
		}
		st.Dirs++
		t.dirTimes = append(t.dirTimes, dirTime{rel, hdr.AccessTime, hdr.ModTime})
		if err := t.meta(dfd, base, hdr, false); err != nil {
			return false, err
		}
		return true, t.xattrs(dfd, base, hdr, st)
	case tar.TypeReg:
		n, err := writeFile(dfd, base, body, hdr.Size, buf)
		if err != nil {
			return false, err
		}
		st.Files++
		st.DataBytes += n
		st.Blocks4K += (n + 4095) / 4096
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dfd, base); err != nil {
			return false, fmt.Errorf("symlink: %w", err)
		}
		st.Symlinks++
		if len(hdr.Linkname) > 59 {
			st.LongSymlns++
			st.Blocks4K++
		}
		if err := t.meta(dfd, base, hdr, true); err != nil {
			return false, err
		}
		return true, t.xattrs(dfd, base, hdr, st)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return false, fmt.Errorf("%w: hard link target %q", ErrUnsafeEntry, hdr.Linkname)
		}
		// The target's parent is resolved first: the cached fd then belongs to it, so the
		// entry's own parent must be resolved again afterwards.
		tfd, tbase, err := t.lookupParent(target)
		if err != nil {
			return false, err
		}
		tdup, err := unix.Dup(tfd)
		if err != nil {
			return false, fmt.Errorf("dup: %w", err)
		}
		defer unix.Close(tdup)
		if dfd, base, err = t.parent(rel); err != nil {
			return false, err
		}
		if err := unix.Linkat(tdup, tbase, dfd, base, 0); err != nil {
			return false, fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		st.HardLinks++
		// Docker's untar adds a link entry's xattrs to the shared inode; so do we.
		return true, t.xattrs(dfd, base, hdr, st)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(dfd, base, kind|perm, int(dev)); err != nil {
			return false, fmt.Errorf("mknod: %w", err)
		}
		st.Devices++
	}
	// xattrs go last: chown(2) drops security.capability (and setuid bits, hence chmod after it).
	if err := t.meta(dfd, base, hdr, false); err != nil {
		return false, err
	}
	return true, t.xattrs(dfd, base, hdr, st)
}

// writeFile creates base and copies size bytes into it, leaving all-zero blocks as holes (a
// docker export expands sparse files; the filesystem builder keeps holes).
func writeFile(dfd int, base string, r io.Reader, size int64, buf []byte) (int64, error) {
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	var n int64
	for n < size {
		want := min(int64(len(buf)), size-n)
		m, err := io.ReadFull(r, buf[:want])
		if err != nil {
			return n, fmt.Errorf("%w: read file data: %w", ErrBadTar, err)
		}
		chunk := buf[:m]
		if isZero(chunk) {
			if _, err := f.Seek(int64(m), io.SeekCurrent); err != nil {
				return n, fmt.Errorf("seek: %w", err)
			}
		} else if _, err := f.Write(chunk); err != nil {
			return n, fmt.Errorf("write: %w", err)
		}
		n += int64(m)
	}
	if err := f.Truncate(size); err != nil {
		return n, fmt.Errorf("truncate: %w", err)
	}
	return n, f.Close()
}

func isZero(b []byte) bool {
	const chunk = 4096
	var zero [chunk]byte
	for len(b) > 0 {
		k := min(len(b), chunk)
		if !bytes.Equal(b[:k], zero[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// xattrs sets the entry's SCHILY.xattr.* records (lsetxattr through the parent fd, so a
// symlink is never followed).
func (t *tree) xattrs(dfd int, base string, hdr *tar.Header, st *Stats) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		p := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + base
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
		st.Xattrs++
	}
	return nil
}

// meta sets owner, then mode (chown clears setuid bits), then times; symlinks get owner and
// times only (their mode is meaningless on Linux).
func (t *tree) meta(dfd int, base string, hdr *tar.Header, symlink bool) error {
	if t.owners {
		if err := unix.Fchownat(dfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if !symlink {
		if err := unix.Fchmodat(dfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %#o: %w", hdr.Mode&0o7777, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // set by finish, after the children
	}
	return utimes(dfd, base, hdr.AccessTime, hdr.ModTime)
}

func utimes(dfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finish sets the directory times recorded by extract (creating children changed them).
func (t *tree) finish() error {
	for i := len(t.dirTimes) - 1; i >= 0; i-- {
		d := t.dirTimes[i]
		if d.rel == "" {
			if err := utimes(t.root, ".", d.atime, d.mtime); err != nil {
				return fmt.Errorf("root directory: %w", err)
			}
			continue
		}
		dfd, base, err := t.lookupParent(d.rel)
		if errors.Is(err, unix.ENOENT) {
			continue // removed since
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // replaced by a later entry
		}
		if err := utimes(dfd, base, d.atime, d.mtime); err != nil {
			return fmt.Errorf("directory %s: %w", d.rel, err)
		}
	}
	t.dirTimes = nil
	return nil
}
