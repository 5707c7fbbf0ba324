package lvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// ErrNotLVM means the device has no LVM2 label in its first four sectors.
var ErrNotLVM = errors.New("lvm: no LVM2 physical volume label")

// ErrCorrupt marks LVM structures that are damaged or contradict each other or the device size.
var ErrCorrupt = errors.New("lvm: corrupt physical volume or metadata")

// ErrUnsupported marks a well-formed volume this reader does not map (thin, snapshot, RAID, …).
var ErrUnsupported = errors.New("lvm: unsupported logical volume")

// ErrMissingPV means a logical volume uses a physical volume that was not given to Assemble.
var ErrMissingPV = errors.New("lvm: physical volume missing")

// ErrNoVG means a physical volume belongs to no volume group (an orphan PV, or one whose
// metadata lives only on PVs that were not given).
var ErrNoVG = errors.New("lvm: no volume group")

const (
	sectorSize    = 512
	labelScan     = 4 // sectors searched for the label
	mdaHeaderSize = 512
	initialCRC    = 0xf597a6cf
	rawLocnIgnore = 0x1 // RAW_LOCN_IGNORED: the metadata area is kept but not used
	maxAreas      = 8   // data or metadata areas listed in one PV header
)

var mdaMagic = []byte(" LVM2 x[5A%r0N*>")

// crc is LVM's calc_crc: the reflected CRC-32 polynomial without the usual pre- and
// post-inversion, seeded with initialCRC.
func crc(b ...[]byte) uint32 {
	c := ^uint32(initialCRC)
	for _, p := range b {
		c = crc32.Update(c, crc32.IEEETable, p)
	}
	return ^c
}

// area is a byte range of the PV (offset from its start; size 0 means "to the end").
type area struct{ Offset, Size uint64 }

// PV is one physical volume as its label describes it, with the newest metadata text it holds.
type PV struct {
	// UUID is the PV's identifier in LVM's printed form (6-4-4-4-4-4-6 characters).
	UUID string
	// DeviceSize is the device size the PV header records, in bytes.
	DeviceSize int64
	// LabelSector is the sector (0-3) holding the label.
	LabelSector int

	r        io.ReaderAt
	size     int64
	data     []area
	mdas     []area
	meta     *section // newest valid VG text on this PV, nil if none
	seqno    int64
	warnings []string
}

// Warnings lists the metadata areas that were passed over because they are damaged, while
// another area of the PV held usable metadata.
func (pv *PV) Warnings() []string { return pv.warnings }

// normUUID drops the dashes LVM prints, so label and text forms compare equal.
func normUUID(s string) string { return strings.ReplaceAll(s, "-", "") }

// printUUID formats a 32-character PV/VG/LV identifier as LVM prints it.
func printUUID(s string) string {
	if len(s) != 32 {
		return s
	}
	return s[0:6] + "-" + s[6:10] + "-" + s[10:14] + "-" + s[14:18] + "-" + s[18:22] + "-" + s[22:26] + "-" + s[26:32]
}

// ReadPV reads the LVM2 label, PV header and metadata areas of the physical volume that fills r
// (size bytes: a partition or a whole disk). It does not need the VG to be complete.
func ReadPV(r io.ReaderAt, size int64) (*PV, error) {
	if size < labelScan*sectorSize {
		return nil, fmt.Errorf("device of %d bytes: %w", size, ErrNotLVM)
	}
	buf := make([]byte, labelScan*sectorSize)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read label sectors: %w", err)
	}
	for s := range labelScan {
		lab := buf[s*sectorSize : (s+1)*sectorSize]
		if !bytes.Equal(lab[0:8], []byte("LABELONE")) {
			continue
		}
		pv, err := parseLabel(lab, s)
		if err != nil {
			return nil, fmt.Errorf("label in sector %d: %w", s, err)
		}
		pv.r, pv.size = r, size
		if err := pv.readMetadata(); err != nil {
			return nil, fmt.Errorf("PV %s: %w", pv.UUID, err)
		}
		return pv, nil
	}
	return nil, ErrNotLVM
}

func parseLabel(lab []byte, sector int) (*PV, error) {
	le := binary.LittleEndian
	if got := le.Uint64(lab[8:]); got != uint64(sector) {
		return nil, fmt.Errorf("label says it is in sector %d: %w", got, ErrCorrupt)
	}
	if want, got := le.Uint32(lab[16:]), crc(lab[20:]); want != got {
		return nil, fmt.Errorf("label checksum %#x, computed %#x: %w", want, got, ErrCorrupt)
	}
	if string(lab[24:32]) != "LVM2 001" {
		return nil, fmt.Errorf("label type %q: %w", lab[24:32], ErrUnsupported)
	}
	off := le.Uint32(lab[20:])
	// The PV header (uuid, size and at least two list terminators) must fit in the sector.
	if off < 32 || off > sectorSize-72 {
		return nil, fmt.Errorf("PV header at offset %d of the label sector: %w", off, ErrCorrupt)
	}
	h := lab[off:]
	id := string(h[0:32])
	for _, c := range []byte(id) {
		if !isNameByte(c) {
			return nil, fmt.Errorf("PV uuid %q: %w", id, ErrCorrupt)
		}
	}
	pv := &PV{UUID: printUUID(id), LabelSector: sector}
	devSize := le.Uint64(h[32:])
	if devSize > 1<<62 {
		return nil, fmt.Errorf("PV header device size %d: %w", devSize, ErrCorrupt)
	}
	pv.DeviceSize = int64(devSize)
	rest := h[40:]
	lists := [2]*[]area{&pv.data, &pv.mdas}
	for i, l := range lists {
		for {
			if len(rest) < 16 {
				return nil, fmt.Errorf("PV header area list %d runs past the label sector: %w", i, ErrCorrupt)
			}
			a := area{Offset: le.Uint64(rest), Size: le.Uint64(rest[8:])}
			rest = rest[16:]
			if a.Offset == 0 {
				break
			}
			if len(*l) == maxAreas {
				return nil, fmt.Errorf("PV header lists more than %d areas: %w", maxAreas, ErrCorrupt)
			}
			*l = append(*l, a)
		}
	}
	return pv, nil
}

// readMetadata reads every metadata area and keeps the newest valid VG text.
func (pv *PV) readMetadata() error {
	var firstErr error
	for i, a := range pv.mdas {
		meta, seqno, err := pv.readArea(a)
		if err != nil {
			err = fmt.Errorf("metadata area %d at byte %d: %w", i, a.Offset, err)
			pv.warnings = append(pv.warnings, err.Error())
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if meta != nil && (pv.meta == nil || seqno > pv.seqno) {
			pv.meta, pv.seqno = meta, seqno
		}
	}
	if pv.meta == nil && firstErr != nil {
		// No area holds usable metadata; a PV whose areas are all damaged cannot be trusted.
		return firstErr
	}
	return nil
}

// readArea reads one metadata area: header checksum, magic, the committed location and its text.
// A nil section with no error means an empty (orphan) or ignored area.
func (pv *PV) readArea(a area) (*section, int64, error) {
	le := binary.LittleEndian
	if a.Size < mdaHeaderSize || a.Offset > uint64(pv.size) || a.Size > uint64(pv.size)-a.Offset {
		return nil, 0, fmt.Errorf("area of %d bytes outside the %d-byte device: %w", a.Size, pv.size, ErrCorrupt)
	}
	h := make([]byte, mdaHeaderSize)
	if _, err := pv.r.ReadAt(h, int64(a.Offset)); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	if want, got := le.Uint32(h[0:]), crc(h[4:]); want != got {
		return nil, 0, fmt.Errorf("header checksum %#x, computed %#x: %w", want, got, ErrCorrupt)
	}
	if !bytes.Equal(h[4:20], mdaMagic) {
		return nil, 0, fmt.Errorf("header magic %q: %w", h[4:20], ErrCorrupt)
	}
	if v := le.Uint32(h[20:]); v != 1 {
		return nil, 0, fmt.Errorf("header version %d: %w", v, ErrUnsupported)
	}
	if start, size := le.Uint64(h[24:]), le.Uint64(h[32:]); start != a.Offset || size != a.Size {
		return nil, 0, fmt.Errorf("header says area at %d size %d, PV header says %d size %d: %w",
			start, size, a.Offset, a.Size, ErrCorrupt)
	}
	// raw_locns[0] is the committed metadata; [1] (precommitted) is not yet valid.
	off, size := le.Uint64(h[40:]), le.Uint64(h[48:])
	sum, flags := le.Uint32(h[56:]), le.Uint32(h[60:])
	if flags&rawLocnIgnore != 0 {
		return nil, 0, nil
	}
	if off == 0 && size == 0 {
		return nil, 0, nil
	}
	buffer := a.Size - mdaHeaderSize // the circular buffer follows the header
	if off < mdaHeaderSize || off >= a.Size || size > buffer {
		return nil, 0, fmt.Errorf("metadata text at %d size %d outside the %d-byte area: %w", off, size, a.Size, ErrCorrupt)
	}
	if size > maxTextSize {
		return nil, 0, fmt.Errorf("metadata text of %d bytes exceeds %d: %w", size, maxTextSize, ErrCorrupt)
	}
	text := make([]byte, size)
	first := min(size, a.Size-off)
	if _, err := pv.r.ReadAt(text[:first], int64(a.Offset+off)); err != nil {
		return nil, 0, fmt.Errorf("read metadata text: %w", err)
	}
	if first < size {
		// The text wraps around the end of the circular buffer to just after the header.
		if _, err := pv.r.ReadAt(text[first:], int64(a.Offset+mdaHeaderSize)); err != nil {
			return nil, 0, fmt.Errorf("read metadata text: %w", err)
		}
	}
	if got := crc(text); got != sum {
		return nil, 0, fmt.Errorf("metadata text checksum %#x, computed %#x: %w", sum, got, ErrCorrupt)
	}
	root, err := parseText(text)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	vg := vgSection(root)
	if vg == nil {
		return nil, 0, fmt.Errorf("metadata text has no volume group section: %w", ErrCorrupt)
	}
	seqno, ok := vg.int("seqno")
	if !ok || seqno < 0 {
		return nil, 0, fmt.Errorf("VG %s: no valid seqno: %w", vg.name, ErrCorrupt)
	}
	return root, seqno, nil
}

// vgSection returns the text's volume group: the one top-level section (LVM writes the VG as
// `<name> { ... }` next to top-level keys such as contents and version).
func vgSection(root *section) *section {
	var vg *section
	for _, s := range root.sections {
		if s.sub("physical_volumes") != nil {
			if vg != nil {
				return nil
			}
			vg = s
		}
	}
	return vg
}
