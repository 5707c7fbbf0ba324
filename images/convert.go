package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/nova-container-agent/nova-container-agent/images/disk"
	"github.com/nova-container-agent/nova-container-agent/images/ext4"
	"github.com/nova-container-agent/nova-container-agent/images/lvm"
	"github.com/nova-container-agent/nova-container-agent/images/qcow2"
	"github.com/nova-container-agent/nova-container-agent/images/rootfs"
)

// ErrUnsupportedFilesystem is matched (errors.Is) by *UnsupportedFilesystemError.
var ErrUnsupportedFilesystem = errors.New("unsupported root filesystem")

// ErrNoRootFilesystem means no partition holds something that looks like an OS root.
var ErrNoRootFilesystem = errors.New("no root filesystem found")

// ErrInvalidImage marks malformed or hostile input (corrupt qcow2 metadata, partition table or
// filesystem, or an unsafe tree); the underlying package sentinel is wrapped too.
var ErrInvalidImage = errors.New("invalid disk image")

// ErrUnsupportedImage marks a well-formed image using something this converter does not read
// (qcow2 encryption or external data files, other disk formats, ext4 encryption).
var ErrUnsupportedImage = errors.New("unsupported disk image")

// UnsupportedFilesystemError names the filesystem (or volume manager) that holds, or may hold,
// the root, so the caller can say which reader is missing.
type UnsupportedFilesystemError struct {
	FS        disk.FSType
	Partition int // 0: the whole disk
	// Volume names the LVM logical volume ("vg/lv") when the refused thing is one, and Reason
	// says why it is not readable (a thin volume, a snapshot, RAID, …).
	Volume, Reason string
}

func (e *UnsupportedFilesystemError) Error() string {
	where := "the whole disk"
	if e.Partition > 0 {
		where = fmt.Sprintf("partition %d", e.Partition)
	}
	if e.Volume != "" {
		return fmt.Sprintf("%s: %s (LVM PV on %s)", ErrUnsupportedFilesystem, e.Reason, where)
	}
	return fmt.Sprintf("%s: %s on %s", ErrUnsupportedFilesystem, e.FS, where)
}

// Is makes errors.Is(err, ErrUnsupportedFilesystem) true.
func (e *UnsupportedFilesystemError) Is(target error) bool { return target == ErrUnsupportedFilesystem }

// Option tunes Convert.
type Option func(*config)

type config struct {
	qopts      []qcow2.Option
	adapt      bool
	partition  int
	logger     *slog.Logger
	cacheBytes int64
	rootCheck  func(*Result) error
}

// WithBackingOpener lets Convert follow qcow2 backing files (see qcow2.DirOpener).
func WithBackingOpener(o qcow2.Opener) Option {
	return func(c *config) { c.qopts = append(c.qopts, qcow2.WithBackingOpener(o)) }
}

// WithoutAdaptation writes the root filesystem unchanged (no container rules).
func WithoutAdaptation() Option { return func(c *config) { c.adapt = false } }

// WithPartition forces the root partition by number (as Linux numbers it) instead of choosing it.
func WithPartition(n int) Option { return func(c *config) { c.partition = n } }

// WithLogger receives debug lines about the choices made.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRootCheck has check see the chosen root (partition, LV, filesystem, OS) before anything
// is read from it; an error from check ends Convert with that error and nothing written.
func WithRootCheck(check func(*Result) error) Option { return func(c *config) { c.rootCheck = check } }

// WithCacheBytes sets the qcow2 decompressed-cluster cache budget (default 32 MiB).
func WithCacheBytes(n int64) Option { return func(c *config) { c.cacheBytes = n } }

// PartitionReport is one partition as Convert saw it.
//
// A row with LV set is a logical volume of an LVM volume group: its Partition is the LVM physical
// volume holding the LV's first extent, except Size, which is the LV's.
type PartitionReport struct {
	disk.Partition
	FS   disk.FSType
	LV   string // "vg/lv" for a logical volume, "" for a partition
	Note string // why it was or was not chosen
}

// Result says what Convert found and did.
type Result struct {
	Format         string // "qcow2" or "raw"
	QCOW2          *qcow2.Info
	PartitionTable disk.TableType
	Partitions     []PartitionReport
	RootPartition  int // 0: filesystem on the whole disk
	RootReason     string
	RootLV         string // "vg/lv" when the root is an LVM logical volume (in RootPartition)
	Filesystem     string // the root reader's Kind: "ext4", "ext3", "ext2"
	FilesystemUUID string
	OS             rootfs.Facts
	Family         rootfs.Family
	Entries        int64
	DataBytes      int64
	TarBytes       int64
	Stats          *rootfs.Stats
	Actions        []rootfs.Applied
	Warnings       []string
}

// Convert reads a disk image (qcow2 or raw, by magic) from r (random access) and writes a tar
// layer of its root filesystem, adapted for a container, to w. It never writes outside w.
func Convert(ctx context.Context, r io.ReaderAt, size int64, w io.Writer, opts ...Option) (*Result, error) {
	cfg := config{adapt: true, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.cacheBytes > 0 {
		cfg.qopts = append(cfg.qopts, qcow2.WithCacheBytes(cfg.cacheBytes))
	}
	res := &Result{Format: "raw"}
	dev, devSize := r, size
	if qcow2.IsQCOW2(r) {
		img, err := qcow2.Open(ctx, r, size, cfg.qopts...)
		if err != nil {
			return nil, classify(fmt.Errorf("open qcow2 image: %w", err))
		}
		defer img.Close()
		info := img.Info()
		res.Format, res.QCOW2 = "qcow2", &info
		dev, devSize = img, img.Size()
		if info.Dirty {
			res.Warnings = append(res.Warnings, "qcow2 dirty bit set (not closed cleanly): refcounts may be stale, data is read as mapped")
		}
	} else if name := otherFormat(r); name != "" {
		return nil, fmt.Errorf("%s image: convert it to qcow2 or raw first: %w", name, ErrUnsupportedImage)
	}

	fsys, err := chooseRoot(dev, devSize, cfg, res)
	if err != nil {
		return res, err
	}
	cfg.logger.DebugContext(ctx, "root filesystem chosen", "partition", res.RootPartition, "reason", res.RootReason,
		"os", res.OS.OSID, "family", res.Family)
	if cfg.rootCheck != nil {
		if err := cfg.rootCheck(res); err != nil {
			return res, err
		}
	}
	plan := rootfs.NoAdaptation()
	if cfg.adapt {
		plan = rootfs.NewPlan(res.OS)
	}
	stats, err := rootfs.Write(ctx, fsys, w, plan)
	if stats != nil {
		res.Stats, res.Actions = stats, stats.Applied
		res.Entries, res.DataBytes, res.TarBytes = stats.Entries, stats.DataBytes, stats.TarBytes
	}
	if err != nil {
		return res, classify(fsys.Classify(fmt.Errorf("write layer: %w", err)))
	}
	return res, nil
}

// classify adds the package-boundary sentinel matching a subpackage error (once: an error
// already carrying one is returned as is).
func classify(err error) error {
	switch {
	case errors.Is(err, ErrInvalidImage), errors.Is(err, ErrUnsupportedImage):
		return err
	case errors.Is(err, qcow2.ErrCorrupt), errors.Is(err, disk.ErrCorrupt), errors.Is(err, ext4.ErrCorrupt), errors.Is(err, lvm.ErrCorrupt),
		errors.Is(err, rootfs.ErrUnsafe), errors.Is(err, qcow2.ErrNotQCOW2), errors.Is(err, ext4.ErrNotExt):
		return fmt.Errorf("%w: %w", ErrInvalidImage, err)
	case errors.Is(err, qcow2.ErrUnsupported), errors.Is(err, ext4.ErrUnsupported), errors.Is(err, lvm.ErrUnsupported),
		errors.Is(err, lvm.ErrMissingPV):
		return fmt.Errorf("%w: %w", ErrUnsupportedImage, err)
	}
	return err
}

// otherFormat names disk image formats that must not be mistaken for a raw disk.
func otherFormat(r io.ReaderAt) string {
	b := make([]byte, 64)
	n, _ := r.ReadAt(b, 0)
	b = b[:n]
	switch {
	case bytes.HasPrefix(b, []byte("KDMV")):
		return "vmdk"
	case bytes.HasPrefix(b, []byte("vhdxfile")):
		return "vhdx"
	case bytes.Contains(b, []byte("<<< Oracle VM VirtualBox Disk Image >>>")):
		return "vdi"
	case bytes.HasPrefix(b, []byte("conectix")):
		return "vpc"
	}
	return ""
}

// rootFS is a root filesystem candidate: what the walker reads (rootfs.FS) plus what Convert
// reports about it. Each reader in readers() returns one.
type rootFS interface {
	rootfs.FS
	// Kind names the filesystem as Result.Filesystem reports it ("ext4", "xfs", ...).
	Kind() string
	// UUID is the filesystem UUID in its usual text form ("" if it has none).
	UUID() string
	// Warnings says what the layer cannot include faithfully, e.g. an ext journal that still
	// needs recovery; Convert copies them into Result.Warnings when this filesystem is the root.
	Warnings() []string
	// Classify wraps an error from this reader with ErrInvalidImage (corrupt input) or
	// ErrUnsupportedImage (a feature it cannot read), so callers can tell them apart without
	// knowing the reader's own sentinels. Other errors come back unchanged.
	Classify(err error) error
}

// openFunc opens the filesystem that fills r (size bytes). Its errors are classified the way
// rootFS.Classify does (ErrInvalidImage / ErrUnsupportedImage wrapped around its own sentinel).
type openFunc func(r io.ReaderAt, size int64) (rootFS, error)

// readers maps a probed filesystem type to the reader that opens it. A type missing here but
// listed in unreadable() is refused with *UnsupportedFilesystemError.
func readers() map[disk.FSType]openFunc {
	return map[disk.FSType]openFunc{
		disk.FSExt2: openExt,
		disk.FSExt3: openExt,
		disk.FSExt4: openExt,
		disk.FSXFS:  openXFS,
		// One line per additional reader, its openFunc in its own file images/<fs>fs.go.
		// A type listed here is read even if unreadable() names it too.
	}
}

// unreadable reports whether t may hold a root this converter has no reader for: it is then
// named in an *UnsupportedFilesystemError rather than passed over silently.
//
// An LVM PV on a partition or the whole disk is read by considerLVs, never reaching this test;
// FSLVM2 is here for a PV found inside a logical volume (nested LVM), which is not read.
func unreadable(t disk.FSType) bool {
	switch t {
	case disk.FSLVM2, disk.FSBtrfs, disk.FSLUKS, disk.FSRAID:
		return true
	}
	return false
}

// extRoot is an ext2/3/4 filesystem as a root candidate.
type extRoot struct{ extFS }

var _ rootFS = extRoot{}

func openExt(r io.ReaderAt, size int64) (rootFS, error) {
	fsys, err := ext4.Open(r, size)
	if err != nil {
		return nil, classify(err)
	}
	return extRoot{extFS{fsys}}, nil
}

func (e extRoot) Kind() string { return e.fs.Kind() }
func (e extRoot) UUID() string { return e.fs.UUID() }
func (e extRoot) Warnings() []string {
	if e.fs.NeedsRecovery() {
		return []string{"ext journal needs recovery (image taken from a running system): changes still in the journal are not included"}
	}
	return nil
}
func (e extRoot) Classify(err error) error { return classify(err) }

type candidate struct {
	idx   int // index into res.Partitions
	fs    rootFS
	facts rootfs.Facts
	size  int64
	score int
	why   string
}

// chooseRoot reads the partition table and picks the root filesystem by content: /sbin/init and
// os-release count most, then the GPT root type, then size. The partition index means nothing:
// a GPT image with BIOS boot, /boot and / in partition 3 must work. The logical volumes of the
// LVM volume groups on the disk are candidates like partitions (RHEL's rootvg/root next to a
// /boot partition), so neither does an LV's name.
func chooseRoot(dev io.ReaderAt, size int64, cfg config, res *Result) (rootFS, error) {
	tab, err := disk.ReadTable(dev, size)
	if err != nil {
		return nil, classify(fmt.Errorf("read partition table: %w", err))
	}
	res.PartitionTable = tab.Type
	res.Warnings = append(res.Warnings, tab.Warnings...)
	parts := tab.Partitions
	if tab.Type == disk.TableNone {
		parts = []disk.Partition{{Number: 0, Start: 0, Size: size, Role: disk.RoleLinux}}
	}
	open := readers()
	var cands []candidate
	var unsupported []PartitionReport
	var lastErr error
	var pvs []lvmPV
	// consider opens the filesystem of one report's bytes and, if it reads, scores it as a
	// root candidate.
	consider := func(rep PartitionReport, r io.ReaderAt, size int64) {
		res.Partitions = append(res.Partitions, rep)
		idx := len(res.Partitions) - 1
		defer func() {
			if rep.LV != "" {
				res.Partitions[idx].Note = "LV " + rep.LV + ": " + res.Partitions[idx].Note
			}
		}()
		opener, ok := open[rep.FS]
		switch {
		case ok:
		case unreadable(rep.FS):
			res.Partitions[idx].Note = "not readable: " + string(rep.FS)
			unsupported = append(unsupported, res.Partitions[idx])
			return
		default:
			res.Partitions[idx].Note = "no root filesystem: " + string(rep.FS)
			return
		}
		fsys, err := opener(r, size)
		if err != nil {
			res.Partitions[idx].Note = fmt.Sprintf("unreadable %s filesystem: %v", rep.FS, err)
			lastErr = err
			return
		}
		facts, err := rootfs.Inspect(fsys)
		if err != nil {
			res.Partitions[idx].Note = fmt.Sprintf("unreadable %s filesystem: %v", rep.FS, err)
			lastErr = fsys.Classify(err)
			return
		}
		c := candidate{idx: idx, fs: fsys, facts: facts, size: size}
		var why []string
		if facts.HasInit {
			c.score += 4
			why = append(why, "/sbin/init")
		}
		if facts.HasOSRelease {
			c.score += 4
			why = append(why, "os-release ("+facts.OSID+")")
		}
		switch rep.Role {
		case disk.RoleRoot:
			c.score += 2
			why = append(why, "GPT root type")
		case disk.RoleLinux:
			c.score++
		}
		if cfg.partition != 0 {
			why = append(why, "requested")
		}
		c.why = fmt.Sprint(why)
		res.Partitions[idx].Note = fsys.Kind() + " filesystem; root evidence: " + c.why
		cands = append(cands, c)
	}
	for _, p := range parts {
		rep := PartitionReport{Partition: p}
		sec := io.NewSectionReader(dev, p.Start, p.Size)
		switch p.Role {
		case disk.RoleEFI, disk.RoleBIOSBoot, disk.RoleSwap, disk.RoleBoot, disk.RoleExtended:
			rep.Note = "skipped: " + string(p.Role) + " partition"
			res.Partitions = append(res.Partitions, rep)
			continue
		}
		if cfg.partition != 0 && p.Number != cfg.partition {
			rep.Note = "skipped: another partition was requested"
			res.Partitions = append(res.Partitions, rep)
			continue
		}
		rep.FS, err = disk.Probe(sec, p.Size)
		if err != nil {
			return nil, fmt.Errorf("probe partition %d: %w", p.Number, err)
		}
		if rep.FS == disk.FSLVM2 {
			// Its logical volumes are considered once every PV of the disk is known: a volume
			// group may span partitions.
			pv, err := lvm.ReadPV(sec, p.Size)
			if err != nil {
				rep.Note = "unreadable LVM physical volume: " + err.Error()
				res.Partitions = append(res.Partitions, rep)
				lastErr = classify(fmt.Errorf("LVM physical volume on partition %d: %w", p.Number, err))
				continue
			}
			rep.Note = "LVM physical volume " + pv.UUID
			res.Partitions = append(res.Partitions, rep)
			pvs = append(pvs, lvmPV{pv: pv, row: len(res.Partitions) - 1})
			for _, w := range pv.Warnings() {
				res.Warnings = append(res.Warnings, fmt.Sprintf("LVM PV %s: %s", pv.UUID, w))
			}
			continue
		}
		consider(rep, sec, p.Size)
	}
	if len(pvs) > 0 {
		var lvUnsupported []PartitionReport
		lvUnsupported, err = considerLVs(pvs, res, consider)
		unsupported = append(unsupported, lvUnsupported...)
		if err != nil {
			lastErr = err
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].size > cands[j].size
	})
	if len(cands) > 0 && (cands[0].facts.LooksLikeRoot() || cfg.partition != 0) {
		c := cands[0]
		p := res.Partitions[c.idx]
		res.RootPartition, res.RootReason, res.RootLV = p.Number, c.why, p.LV
		res.Partitions[c.idx].Note = "root: " + c.why
		if p.LV != "" {
			res.Partitions[c.idx].Note = "root: LV " + p.LV + ": " + c.why
		}
		res.Filesystem, res.FilesystemUUID = c.fs.Kind(), c.fs.UUID()
		res.OS, res.Family = c.facts, c.facts.Family
		res.Warnings = append(res.Warnings, c.fs.Warnings()...)
		for _, u := range unsupported {
			if u.LV != "" {
				res.Warnings = append(res.Warnings, fmt.Sprintf("LV %s not included: %s", u.LV, u.Note))
				continue
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("partition %d (%s) not included: no reader", u.Number, u.FS))
		}
		return c.fs, nil
	}
	if len(unsupported) > 0 {
		// Prefer the one a GPT type marks as root, then the largest.
		sort.SliceStable(unsupported, func(i, j int) bool {
			if (unsupported[i].Role == disk.RoleRoot) != (unsupported[j].Role == disk.RoleRoot) {
				return unsupported[i].Role == disk.RoleRoot
			}
			return unsupported[i].Size > unsupported[j].Size
		})
		u := unsupported[0]
		ufe := &UnsupportedFilesystemError{FS: u.FS, Partition: u.Number}
		if u.LV != "" {
			ufe.Volume, ufe.Reason = u.LV, strings.TrimPrefix(u.Note, "not readable: ")
		}
		return nil, ufe
	}
	if lastErr != nil {
		return nil, classify(fmt.Errorf("%w: %w", ErrNoRootFilesystem, lastErr))
	}
	return nil, fmt.Errorf("%w among %d partitions (%s table)", ErrNoRootFilesystem, len(parts), tab.Type)
}

// lvmPV is an LVM physical volume found on a partition (or the whole disk) and its report row.
type lvmPV struct {
	pv  *lvm.PV
	row int // index into Result.Partitions
}

// considerLVs assembles the volume groups of the disk's PVs and hands each visible, readable
// logical volume to consider as a root candidate, the way a partition is. It returns the rows
// of LVs that exist but cannot be read (thin, snapshot, RAID, …: refused like an unreadable
// filesystem if nothing else is a root), and the error that kept a VG or LV from being read.
func considerLVs(pvs []lvmPV, res *Result, consider func(PartitionReport, io.ReaderAt, int64)) ([]PartitionReport, error) {
	list := make([]*lvm.PV, len(pvs))
	rowOf := map[string]int{} // PV uuid → report row
	for i, p := range pvs {
		list[i] = p.pv
		rowOf[p.pv.UUID] = p.row
	}
	vgs, err := lvm.Assemble(list...)
	if err != nil {
		for _, p := range pvs {
			res.Partitions[p.row].Note += ": volume groups unreadable: " + err.Error()
		}
		return nil, classify(fmt.Errorf("assemble LVM volume groups: %w", err))
	}
	var unsupported []PartitionReport
	var lastErr error
	for _, vg := range vgs {
		for _, p := range vg.PVs {
			if row, ok := rowOf[p.UUID]; ok {
				res.Partitions[row].Note += " of VG " + vg.Name
			}
		}
		for _, m := range vg.Missing() {
			res.Warnings = append(res.Warnings, fmt.Sprintf("LVM VG %s: PV %s is not on this disk", vg.Name, m))
		}
		for _, lv := range vg.LVs() {
			rep := PartitionReport{LV: lv.FullName()}
			// The row stands in the partition holding the LV's first extent.
			row := pvs[0].row
			if len(lv.Segments) > 0 && len(lv.Segments[0].Stripes) > 0 {
				for _, p := range vg.PVs {
					if r, ok := rowOf[p.UUID]; ok && p.Name == lv.Segments[0].Stripes[0].PV {
						row = r
					}
				}
			}
			rep.Partition = res.Partitions[row].Partition
			rep.Size = lv.Size
			if !lv.Visible {
				rep.Note = "skipped: LV " + lv.FullName() + " is LVM-internal (not visible)"
				res.Partitions = append(res.Partitions, rep)
				continue
			}
			r, err := lv.Open()
			switch {
			case errors.Is(err, lvm.ErrUnsupported):
				rep.FS, rep.Note = disk.FSLVM2, "not readable: "+err.Error()
				res.Partitions = append(res.Partitions, rep)
				unsupported = append(unsupported, rep)
				continue
			case err != nil:
				rep.Note = "not readable: " + err.Error()
				res.Partitions = append(res.Partitions, rep)
				lastErr = classify(err)
				continue
			}
			if rep.FS, err = disk.Probe(r, lv.Size); err != nil {
				return unsupported, fmt.Errorf("probe LV %s: %w", lv.FullName(), err)
			}
			consider(rep, r, lv.Size)
		}
	}
	return unsupported, lastErr
}
