package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/images/disk"
)

// ErrInvalidOptions marks unusable Options.
var ErrInvalidOptions = errors.New("snapshot: invalid options")

// Options configure a snapshot.
type Options struct {
	// WorkDir holds every temporary file (staging tree, raw disk, result); it must exist and
	// be on a filesystem with room for the tree, a sparse raw disk and the qcow2.
	WorkDir string
	// Original is the Glance image the instance was booted from (qcow2 or raw), OriginalSize
	// its size. Optional: without it the snapshot boots as a container only (LayoutFresh).
	Original     io.ReaderAt
	OriginalSize int64
	// RootGB is the flavor's root disk; the snapshot's virtual size is at least that.
	RootGB int
	// NoCompress writes plain qcow2 clusters (faster, larger) instead of zlib-compressed ones.
	NoCompress bool
	// Runner runs mkfs.ext4, sfdisk and qemu-img; default ExecRunner.
	Runner Runner
	// Logger receives debug lines; default discards.
	Logger *slog.Logger

	// skipOwners leaves file owners as the extracting user's (unit tests run unprivileged).
	skipOwners bool
}

func (o *Options) validate() error {
	if o.WorkDir == "" {
		return fmt.Errorf("%w: WorkDir is required", ErrInvalidOptions)
	}
	if st, err := os.Stat(o.WorkDir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: WorkDir %s is not a directory", ErrInvalidOptions, o.WorkDir)
	}
	if o.Original != nil && o.OriginalSize <= 0 {
		return fmt.Errorf("%w: OriginalSize must be set with Original", ErrInvalidOptions)
	}
	if o.RootGB < 0 {
		return fmt.Errorf("%w: RootGB %d", ErrInvalidOptions, o.RootGB)
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Result is a finished snapshot: a qcow2 file for Glance (disk_format qcow2, container_format
// bare). The caller uploads Path and then calls Cleanup.
type Result struct {
	Path            string
	Size            int64 // bytes of the qcow2 file
	VirtualSize     int64 // bytes of the virtual disk
	DiskFormat      string
	ContainerFormat string
	Layout          Layout
	// VMBootable says whether the disk carries a boot loader and a kernel (from the original);
	// BootNote says why or why not.
	VMBootable bool
	BootNote   string
	// FilesystemUUID is the root filesystem's UUID (the original's when its layout is kept).
	FilesystemUUID string
	Tree           Stats    // what the snapshot tar held
	Restored       Stats    // what was merged from the original
	Actions        []string // un-adaptation steps taken
	Warnings       []string
	StageTime      time.Duration // reading the tar (the instance may be paused meanwhile)
	BuildTime      time.Duration // everything after
	dir            string
}

// Open opens the qcow2 for upload.
func (r *Result) Open() (*os.File, error) { return os.Open(r.Path) }

// Cleanup removes the qcow2 and its directory; safe to call more than once.
func (r *Result) Cleanup() error {
	if r == nil || r.dir == "" {
		return nil
	}
	err := os.RemoveAll(r.dir)
	r.dir = ""
	if err != nil {
		return fmt.Errorf("remove snapshot work directory: %w", err)
	}
	return nil
}

// Staged is a snapshot whose tar has been read into a staging tree: the instance no longer needs
// to be paused. Build finishes it; Close discards it.
type Staged struct {
	opts    Options
	dir     string
	tree    *tree
	stats   Stats
	elapsed time.Duration
}

// Stage reads the container's root filesystem tar (a docker export) into a staging tree under
// opts.WorkDir, preserving owners, modes, times, xattrs, hard links and devices, and refusing
// entries that would escape it. Close the tar stream (and so resume the instance) as soon as
// Stage returns.
func Stage(ctx context.Context, tarStream io.Reader, opts Options) (*Staged, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	dir, err := os.MkdirTemp(opts.WorkDir, "nca-snapshot-")
	if err != nil {
		return nil, fmt.Errorf("create snapshot work directory: %w", err)
	}
	s := &Staged{opts: opts, dir: dir}
	root := filepath.Join(dir, "tree")
	if err := os.Mkdir(root, 0o755); err != nil {
		s.Close()
		return nil, fmt.Errorf("create staging tree: %w", err)
	}
	if s.tree, err = openTree(root, !opts.skipOwners); err != nil {
		s.Close()
		return nil, err
	}
	if s.stats, err = s.tree.extract(ctx, tarStream, nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("stage snapshot tar: %w", err)
	}
	s.elapsed = time.Since(start)
	opts.Logger.DebugContext(ctx, "snapshot tar staged", "entries", s.stats.Entries, "bytes", s.stats.DataBytes, "elapsed", s.elapsed)
	return s, nil
}

// Stats is what the tar held.
func (s *Staged) Stats() Stats { return s.stats }

// Close removes everything Stage wrote; safe after Build and more than once.
func (s *Staged) Close() error {
	if s.tree != nil {
		s.tree.Close()
		s.tree = nil
	}
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	if err != nil {
		return fmt.Errorf("remove snapshot work directory: %w", err)
	}
	return nil
}

// Build is Stage then (*Staged).Build.
func Build(ctx context.Context, tarStream io.Reader, opts Options) (*Result, error) {
	s, err := Stage(ctx, tarStream, opts)
	if err != nil {
		return nil, err
	}
	return s.Build(ctx)
}

// Build turns the staged tree into the qcow2: restore what the container adaptation removed
// (from the original), size and lay out the disk, mkfs.ext4 -d, qemu-img convert. The staging
// tree and the raw disk are removed whatever happens; on error nothing is left.
func (s *Staged) Build(ctx context.Context) (res *Result, err error) {
	if s.tree == nil {
		return nil, fmt.Errorf("%w: staged snapshot already built or closed", ErrInvalidOptions)
	}
	start := time.Now()
	o := s.opts
	res = &Result{DiskFormat: "qcow2", ContainerFormat: "bare", Tree: s.stats, StageTime: s.elapsed, dir: s.dir}
	defer func() {
		if err != nil {
			s.Close()
			res = nil
			return
		}
		s.tree, s.dir = nil, "" // the result owns the directory now
	}()
	t := s.tree
	var orig *Original
	var sb *Superblock
	var dev io.ReaderAt
	bootCode := false
	freshWhy := "" // why an original was given but its layout could not be kept
	if o.Original != nil {
		var state *origState
		orig, state, res.Restored, err = readOriginal(ctx, o.Original, o.OriginalSize, t, o.Logger)
		if err != nil {
			return nil, err
		}
		if ok, why := orig.InPlace(); !ok {
			// Nothing of the original was merged: the tree stays the container's own.
			freshWhy = why
			res.Warnings = append(res.Warnings, why)
			orig = nil
		} else if res.Actions, err = unadapt(t, state); err != nil {
			return nil, fmt.Errorf("undo container adaptation: %w", err)
		}
	}
	if orig != nil {
		d, _, closeDisk, derr := openDisk(ctx, o.Original, o.OriginalSize)
		if derr != nil {
			return nil, derr
		}
		defer closeDisk()
		dev = d
		super, serr := readSuper(dev, orig.Root)
		if serr != nil {
			return nil, serr
		}
		sb = &super
		if len(super.Dropped) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("original filesystem features not reproduced: %v", super.Dropped))
		}
		bootCode, err = hasBootCode(dev)
		if err != nil {
			return nil, err
		}
	}
	kernel := hasKernel(t)
	if err := t.finish(); err != nil {
		return nil, fmt.Errorf("set directory times: %w", err)
	}
	t.Close()
	s.tree = nil

	bs, is := int64(4096), int64(256)
	if sb != nil {
		bs, is = sb.BlockSize, sb.InodeSize
	}
	total := res.Tree
	total.add(res.Restored)
	need := NeedFor(total, bs, is)
	l := PlanLayout(orig, need, int64(o.RootGB)*gib)
	if freshWhy != "" {
		l.Note = "fresh layout: " + freshWhy
	}
	res.Layout = l
	o.Logger.DebugContext(ctx, "snapshot layout", "mode", l.Mode, "disk", l.DiskSize, "root_start", l.RootStart, "note", l.Note)

	rawPath := filepath.Join(s.dir, "disk.raw")
	if err := s.writeDisk(ctx, rawPath, dev, &l); err != nil {
		return nil, err
	}
	res.Layout = l
	fsUUID := uuid.NewString()
	fsSB := sb
	if l.Mode != LayoutOriginal {
		fsSB = nil
	} else {
		fsUUID = sb.UUID
	}
	res.FilesystemUUID = fsUUID
	if _, err := o.Runner.Run(ctx, nil, "mkfs.ext4", MkfsArgs(l, fsSB, need, fsUUID, filepath.Join(s.dir, "tree"), rawPath)...); err != nil {
		return nil, fmt.Errorf("build root filesystem: %w", err)
	}
	// The tree is in the filesystem now: free its space before qemu-img needs room.
	if err := os.RemoveAll(filepath.Join(s.dir, "tree")); err != nil {
		return nil, fmt.Errorf("remove staging tree: %w", err)
	}
	out := filepath.Join(s.dir, "snapshot.qcow2")
	if _, err := o.Runner.Run(ctx, nil, "qemu-img", QemuImgArgs(rawPath, out, !o.NoCompress)...); err != nil {
		return nil, fmt.Errorf("write qcow2: %w", err)
	}
	if err := os.Remove(rawPath); err != nil {
		return nil, fmt.Errorf("remove raw disk: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("stat qcow2: %w", err)
	}
	res.Path, res.Size, res.VirtualSize = out, st.Size(), l.DiskSize
	switch {
	case l.Mode != LayoutOriginal:
		res.BootNote = "no boot loader: " + l.Note
	case !bootCode && !hasRole(orig, disk.RoleEFI):
		res.BootNote = "the original disk has no BIOS boot code and no EFI partition"
	case !kernel:
		res.BootNote = "no kernel in /boot and no /boot mount in fstab"
	default:
		res.VMBootable = true
		res.BootNote = "boot loader, kernel and modules of the original image; root filesystem UUID kept"
	}
	res.BuildTime = time.Since(start)
	return res, nil
}

// QemuImgArgs is the qemu-img argv converting the raw disk into the snapshot qcow2.
func QemuImgArgs(raw, out string, compress bool) []string {
	args := []string{"convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1"}
	if compress {
		args = append(args, "-c")
	}
	return append(args, raw, out)
}

// SfdiskGrowArgs is the sfdisk argv (stdin ", +") that extends partition n to the end of disk.
func SfdiskGrowArgs(raw string, n int) []string {
	return []string{"--no-reread", "--no-tell-kernel", "-q", "-N", strconv.Itoa(n), raw}
}

func hasRole(o *Original, r disk.Role) bool {
	if o == nil {
		return false
	}
	for _, p := range o.Partitions {
		if p.Role == r {
			return true
		}
	}
	return false
}

// hasBootCode reports whether the MBR's code area is not blank (a BIOS boot loader).
func hasBootCode(dev io.ReaderAt) (bool, error) {
	b := make([]byte, 440)
	if _, err := dev.ReadAt(b, 0); err != nil {
		return false, fmt.Errorf("%w: read boot sector: %w", ErrOriginal, err)
	}
	return !isZero(b), nil
}

// writeDisk creates the sparse raw disk: the original's bytes outside the root filesystem and
// the partition table (grown or fresh); l.RootSize is updated from the table actually written.
func (s *Staged) writeDisk(ctx context.Context, rawPath string, dev io.ReaderAt, l *Layout) error {
	f, err := os.OpenFile(rawPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create raw disk: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(l.DiskSize); err != nil {
		return fmt.Errorf("size raw disk: %w", err)
	}
	if l.Mode == LayoutOriginal {
		if err := copySparse(ctx, f, dev, 0, l.CopyHead); err != nil {
			return fmt.Errorf("copy original disk head: %w", err)
		}
		if l.TailEnd > l.TailStart {
			if err := copySparse(ctx, f, dev, l.TailStart, l.TailEnd); err != nil {
				return fmt.Errorf("copy original disk tail: %w", err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync raw disk: %w", err)
	}
	run := s.opts.Runner
	switch {
	case l.Mode == LayoutFresh:
		if _, err := run.Run(ctx, []byte(freshTable), "sfdisk", "--no-reread", "--no-tell-kernel", "-q", rawPath); err != nil {
			return fmt.Errorf("write partition table: %w", err)
		}
	case l.Grow:
		if l.GPT {
			if _, err := run.Run(ctx, nil, "sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--relocate", "gpt-bak-std", rawPath); err != nil {
				return fmt.Errorf("move backup GPT to the end: %w", err)
			}
		}
		if _, err := run.Run(ctx, []byte(", +\n"), "sfdisk", SfdiskGrowArgs(rawPath, l.RootNum)...); err != nil {
			return fmt.Errorf("grow root partition %d: %w", l.RootNum, err)
		}
	default:
		return nil
	}
	if l.RootNum == 0 {
		return nil
	}
	tab, err := disk.ReadTable(f, l.DiskSize)
	if err != nil {
		return fmt.Errorf("re-read partition table: %w", err)
	}
	for _, p := range tab.Partitions {
		if p.Number == l.RootNum {
			if p.Start != l.RootStart {
				return fmt.Errorf("partition %d starts at %d after sfdisk, want %d", p.Number, p.Start, l.RootStart)
			}
			l.RootSize = p.Size
			return nil
		}
	}
	return fmt.Errorf("partition %d missing after sfdisk", l.RootNum)
}

// copySparse copies [from, to) of src to the same offsets of dst, skipping all-zero chunks so
// dst stays sparse.
func copySparse(ctx context.Context, dst io.WriterAt, src io.ReaderAt, from, to int64) error {
	buf := make([]byte, mib)
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf)), to-off)
		m, err := src.ReadAt(buf[:n], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		if !isZero(buf[:n]) {
			if _, err := dst.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("write at %d: %w", off, err)
			}
		}
		off += n
	}
	return nil
}
