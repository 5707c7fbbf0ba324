package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// ErrUnsafe marks a filesystem whose tree cannot be written safely: a directory reached twice
// (a cycle), paths deeper or longer than Linux allows, a file claiming more content than the
// filesystem holds.
var ErrUnsafe = errors.New("rootfs: unsafe filesystem tree")

const (
	maxDepth   = 1024
	maxPathLen = 4096 // PATH_MAX: docker's untar could not create a longer path anyway
	maxRewrite = 1 << 20
)

// Applied reports one rule's effect on the layer.
type Applied struct {
	Action  Action
	Pattern string // the rule pattern or the added path
	Why     string
	Entries int64 // entries matched (dropped, rewritten, added)
	Bytes   int64 // content bytes left out, for drops of regular files
}

// Stats counts what Write wrote.
type Stats struct {
	Entries        int64 // tar entries written
	Files          int64
	Dirs           int64
	Symlinks       int64
	Hardlinks      int64
	Devices        int64
	Fifos          int64
	SocketsSkipped int64 // sockets cannot be stored in tar (GNU tar skips them too)
	DataBytes      int64 // file content bytes
	TarBytes       int64 // bytes written to w
	Applied        []Applied
}

type walker struct {
	ctx     context.Context
	fsys    FS
	plan    *Plan
	pipe    *pipeline
	links   map[uint64]string // inode → first name written, for inodes with several links
	dirs    map[uint64]string // directory inodes already entered → path (cycle detection)
	stats   *Stats
	applied map[string]*Applied
	maxFile int64
	rootMt  time.Time
}

// Write walks fsys from its root and writes a tar layer to w, applying plan on the way.
//
// The walk (metadata) runs in the calling goroutine; when fsys implements ParallelFS, file
// contents are read ahead by a few workers, within a fixed memory window, and written in walk
// order by a tar goroutine feeding a bounded write-behind buffer in front of w (see pipeline).
func Write(ctx context.Context, fsys FS, w io.Writer, plan *Plan) (*Stats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stats := &Stats{}
	workers := 0
	if p, ok := fsys.(ParallelFS); ok {
		workers = min(max(p.ParallelReads(), 0), maxReadWorkers)
	}
	pipe := startPipeline(ctx, cancel, w, workers)
	wk := &walker{ctx: ctx, fsys: fsys, plan: plan, pipe: pipe, links: map[uint64]string{},
		dirs: map[uint64]string{}, stats: stats, applied: map[string]*Applied{}, maxFile: fsys.Size()}
	err := wk.walk()
	if err == nil {
		err = wk.appendAdditions()
	}
	// The walker's error is the cause (a writer or reader failure reaches it as the context's
	// cause); the tar is only finished when everything went through.
	tarBytes, werr := pipe.finish(err == nil)
	stats.TarBytes = tarBytes
	for _, k := range slices.Sorted(maps.Keys(wk.applied)) {
		stats.Applied = append(stats.Applied, *wk.applied[k])
	}
	if err != nil {
		return stats, err
	}
	return stats, werr
}

func (w *walker) record(action Action, pattern, why string, bytes int64) {
	k := string(action) + " " + pattern
	a := w.applied[k]
	if a == nil {
		a = &Applied{Action: action, Pattern: pattern, Why: why}
		w.applied[k] = a
	}
	a.Entries++
	a.Bytes += bytes
}

func (w *walker) walk() error {
	root, err := w.fsys.Root()
	if err != nil {
		return fmt.Errorf("read root directory: %w", err)
	}
	if root.Mode&TypeMask != TypeDir {
		return fmt.Errorf("root inode is not a directory: %w", ErrUnsafe)
	}
	w.rootMt = root.Mtime
	return w.dir(root, "", 0)
}

// dir writes directory n (at absolute path abs, "" for the root) and everything below it.
func (w *walker) dir(n Node, abs string, depth int) error {
	if prev, seen := w.dirs[n.Ino]; seen {
		return fmt.Errorf("directory inode %d reached at %q and again at %q (cycle): %w", n.Ino, prev, abs+"/", ErrUnsafe)
	}
	if depth > maxDepth {
		return fmt.Errorf("%s: deeper than %d levels: %w", abs, maxDepth, ErrUnsafe)
	}
	w.dirs[n.Ino] = abs + "/"
	hdr, err := w.header(n, abs)
	if err != nil {
		return err
	}
	hdr.Typeflag = tar.TypeDir
	if err := w.emit(hdr); err != nil {
		return err
	}
	w.stats.Dirs++
	if abs != "" {
		if r, ok := w.plan.match(abs); ok && r.Action == ActionDropContents {
			w.record(r.Action, r.Pattern, r.Why, 0)
			return nil
		}
	}
	return w.fsys.ReadDir(n, func(name string, ino uint64) error {
		if err := w.ctx.Err(); err != nil {
			return context.Cause(w.ctx)
		}
		return w.entry(abs+"/"+name, ino, depth+1)
	})
}

func (w *walker) entry(abs string, ino uint64, depth int) error {
	if len(abs) > maxPathLen {
		return fmt.Errorf("path %.64q… longer than %d bytes: %w", abs, maxPathLen, ErrUnsafe)
	}
	n, err := w.fsys.Stat(ino)
	if err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	typ := n.Mode & TypeMask
	rule, ruled := w.plan.match(abs)
	if ruled && rule.Action == ActionDrop {
		var size int64
		if typ == TypeRegular {
			size = n.Size
		}
		w.record(rule.Action, rule.Pattern, rule.Why, size)
		return nil
	}
	if a, ok := w.plan.replaced[abs]; ok {
		w.record(ActionReplace, abs, "the image's entry is replaced by: "+a.why, 0)
		return nil
	}
	switch typ {
	case TypeDir:
		return w.dir(n, abs, depth)
	case TypeRegular:
		return w.regular(n, abs, rule, ruled)
	case TypeSymlink:
		target, err := w.fsys.Readlink(n)
		if err != nil {
			return fmt.Errorf("%s: %w", abs, err)
		}
		if ruled && rule.Action == ActionSymlinkToFile {
			content := []byte("# Written by nova-container-agent: replaced a symlink to " + target +
				"; the container runtime provides this file.\n")
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "." + abs, Mode: 0o644, ModTime: n.Mtime,
				Size: int64(len(content)), Format: tar.FormatPAX}
			w.record(rule.Action, rule.Pattern, rule.Why, 0)
			w.stats.Files++
			return w.emitBytes(hdr, content)
		}
		hdr, err := w.header(n, abs)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		w.stats.Symlinks++
		return w.emit(hdr)
	case TypeChar, TypeBlock, TypeFifo:
		if lk, ok := w.hardlink(n, abs); ok {
			return w.emit(lk)
		}
		hdr, err := w.header(n, abs)
		if err != nil {
			return err
		}
		switch typ {
		case TypeChar:
			hdr.Typeflag = tar.TypeChar
		case TypeBlock:
			hdr.Typeflag = tar.TypeBlock
		default:
			hdr.Typeflag = tar.TypeFifo
		}
		if typ != TypeFifo {
			hdr.Devmajor, hdr.Devminor = int64(n.Devmajor), int64(n.Devminor)
			w.stats.Devices++
		} else {
			w.stats.Fifos++
		}
		return w.emit(hdr)
	case TypeSocket:
		w.stats.SocketsSkipped++
		return nil
	}
	return fmt.Errorf("%s: inode %d has unknown file type %#o: %w", abs, n.Ino, typ, ErrUnsafe)
}

// hardlink returns a link entry when n was already written under another name.
func (w *walker) hardlink(n Node, abs string) (*tar.Header, bool) {
	if n.Links < 2 {
		return nil, false
	}
	if first, ok := w.links[n.Ino]; ok {
		w.stats.Hardlinks++
		return &tar.Header{Typeflag: tar.TypeLink, Name: "." + abs, Linkname: "." + first, ModTime: n.Mtime,
			Mode: int64(n.Mode & 0o7777), Uid: int(n.UID), Gid: int(n.GID), Format: tar.FormatPAX}, true
	}
	w.links[n.Ino] = abs
	return nil, false
}

func (w *walker) regular(n Node, abs string, rule Rule, ruled bool) error {
	if ruled && (rule.Action == ActionEmpty || rule.Action == ActionFilterFstab) {
		hdr, err := w.header(n, abs)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeReg
		var content []byte
		if rule.Action == ActionFilterFstab {
			if n.Size > maxRewrite {
				return fmt.Errorf("%s: %d bytes, too large to rewrite: %w", abs, n.Size, ErrUnsafe)
			}
			b, err := w.readAll(n)
			if err != nil {
				return fmt.Errorf("%s: %w", abs, err)
			}
			var removed int
			content, removed = filterFstab(b)
			if removed == 0 {
				content = b
			} else {
				w.record(rule.Action, rule.Pattern, rule.Why, 0)
			}
		} else {
			w.record(rule.Action, rule.Pattern, rule.Why, n.Size)
		}
		hdr.Size = int64(len(content))
		w.stats.Files++
		return w.emitBytes(hdr, content)
	}
	if lk, ok := w.hardlink(n, abs); ok {
		return w.emit(lk)
	}
	if n.Size < 0 || n.Size > w.maxFile {
		return fmt.Errorf("%s: file of %d bytes in a %d-byte filesystem: %w", abs, n.Size, w.maxFile, ErrUnsafe)
	}
	// Map the content before writing the header, so a broken extent tree is reported as such
	// rather than as a short tar entry.
	r, err := w.fsys.Open(n)
	if err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	hdr, err := w.header(n, abs)
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, n.Size
	w.stats.Entries++
	w.stats.Files++
	w.stats.DataBytes += n.Size
	return w.pipe.file(hdr, r, abs)
}

func (w *walker) readAll(n Node) ([]byte, error) {
	r, err := w.fsys.Open(n)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (w *walker) emit(hdr *tar.Header) error {
	w.stats.Entries++
	return w.pipe.entry(hdr, nil)
}

func (w *walker) emitBytes(hdr *tar.Header, content []byte) error {
	w.stats.Entries++
	w.stats.DataBytes += int64(len(content))
	return w.pipe.entry(hdr, content)
}

// header fills the metadata every entry type shares: name, permission bits, numeric owner,
// nanosecond mtime (PAX) and xattrs as SCHILY.xattr records.
func (w *walker) header(n Node, abs string) (*tar.Header, error) {
	name := "." + abs
	if n.Mode&TypeMask == TypeDir {
		name += "/"
	}
	hdr := &tar.Header{Name: name, Mode: int64(n.Mode & 0o7777), Uid: int(n.UID), Gid: int(n.GID),
		ModTime: n.Mtime, Format: tar.FormatPAX}
	xs, err := w.fsys.Xattrs(n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abs, err)
	}
	for _, x := range xs {
		if r, drop := w.plan.dropXattrs[x.Name]; drop {
			w.record(r.Action, r.Pattern, r.Why, 0)
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	return hdr, nil
}

// appendAdditions writes the plan's added directories, files and mask symlinks, owned by root
// and dated like the image's root directory so the layer is reproducible.
func (w *walker) appendAdditions() error {
	for _, a := range w.plan.additions {
		hdr := &tar.Header{Name: "." + a.path, ModTime: w.rootMt, Format: tar.FormatPAX}
		switch a.typ {
		case '5':
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, hdr.Name+"/"
			w.stats.Dirs++
		case '2':
			hdr.Typeflag, hdr.Mode, hdr.Linkname = tar.TypeSymlink, 0o777, a.link
			w.stats.Symlinks++
		default:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(a.content))
			w.stats.Files++
		}
		w.record(a.action, a.path, a.why, 0)
		if err := w.emitBytes(hdr, []byte(a.content)); err != nil {
			return err
		}
	}
	return nil
}
