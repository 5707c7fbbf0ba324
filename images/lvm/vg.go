package lvm

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
)

// Bounds on what a volume group may describe (LVM's own limits are lower or similar).
const (
	maxLVs          = 4096
	maxPVs          = 1024
	maxSegments     = 1 << 16 // over all LVs of a VG
	maxStripes      = 128
	maxExtentSector = 1 << 32 // extent_size is in sectors; LVM caps it far lower
	maxBytes        = 1 << 62 // any byte offset or size computed from the metadata
)

// VG is a volume group assembled from the PVs found on a disk.
type VG struct {
	// Name and UUID as LVM prints them.
	Name, UUID string
	// Seqno is the metadata sequence number used (the newest any PV held).
	Seqno int64
	// ExtentSize is the size of one physical/logical extent in bytes.
	ExtentSize int64
	// PVs lists the VG's physical volumes in metadata order.
	PVs []PVInfo

	lvs []LV
}

// PVInfo is one physical volume as the VG metadata describes it.
type PVInfo struct {
	Name    string // key in the metadata, e.g. "pv0"
	UUID    string
	Device  string // the device path when the metadata was written: a hint only
	PEStart int64  // byte offset of extent 0 in the PV
	PECount int64
	Present bool // a PV with this UUID was given to Assemble

	pv *PV
}

// LV is one logical volume of a VG.
type LV struct {
	VG, Name, UUID string
	// Size in bytes (extents × extent size).
	Size int64
	// Status is LVM's status flags (READ, WRITE, VISIBLE, …); Flags and Tags as written.
	Status, Flags, Tags []string
	// Visible is false for LVM-internal volumes (thin pool data, RAID images, …).
	Visible bool
	// Segments in logical-extent order.
	Segments []Segment

	extentSize int64
	pvs        map[string]*PVInfo // by metadata name
	reason     error              // why Open refuses, nil if readable
}

// Segment is one run of logical extents.
type Segment struct {
	StartExtent, ExtentCount int64
	Type                     string // "striped" (linear when one stripe), "thin", "snapshot", "raid1", …
	Stripes                  []Stripe
}

// Stripe places a segment's extents on a PV.
type Stripe struct {
	PV          string // metadata name of the PV, e.g. "pv0"
	StartExtent int64
}

// LVs returns the volume group's logical volumes in metadata order.
func (vg *VG) LVs() []LV { return slices.Clone(vg.lvs) }

// Missing returns the UUIDs of the VG's PVs that were not given to Assemble.
func (vg *VG) Missing() []string {
	var out []string
	for _, p := range vg.PVs {
		if !p.Present {
			out = append(out, p.UUID)
		}
	}
	return out
}

// FullName is "vg/lv", as lvs and fstab's /dev/<vg>/<lv> name it.
func (lv LV) FullName() string { return lv.VG + "/" + lv.Name }

// Readable returns nil if Open can map the LV, or the error Open would return.
func (lv LV) Readable() error { return lv.reason }

// Open returns the LV's content as a reader of Size bytes. It fails with ErrUnsupported for
// segment types other than linear, and with ErrMissingPV if a segment is on a PV not given.
func (lv LV) Open() (io.ReaderAt, error) {
	if lv.reason != nil {
		return nil, lv.reason
	}
	return &lvReader{lv: lv}, nil
}

// Open reads a single PV and returns the volume group it belongs to.
func Open(r io.ReaderAt, size int64) (*VG, error) {
	pv, err := ReadPV(r, size)
	if err != nil {
		return nil, err
	}
	vgs, err := Assemble(pv)
	if err != nil {
		return nil, err
	}
	if len(vgs) == 0 {
		return nil, fmt.Errorf("PV %s: %w", pv.UUID, ErrNoVG)
	}
	return vgs[0], nil
}

// Assemble groups PVs into volume groups, using for each VG the newest metadata (highest seqno)
// that any of its PVs holds. PVs without a VG (orphans) are left out; a VG is returned even if
// some of its PVs are missing (see VG.Missing; LVs on them fail to open with ErrMissingPV).
func Assemble(pvs ...*PV) ([]*VG, error) {
	byUUID := map[string]*PV{}
	for _, pv := range pvs {
		k := normUUID(pv.UUID)
		if byUUID[k] != nil {
			return nil, fmt.Errorf("PV %s found twice: %w", pv.UUID, ErrCorrupt)
		}
		byUUID[k] = pv
	}
	// The newest text per VG id.
	type best struct {
		vg    *section
		seqno int64
	}
	newest := map[string]*best{}
	var order []string
	for _, pv := range pvs {
		if pv.meta == nil {
			continue
		}
		vg := vgSection(pv.meta)
		id, _ := vg.str("id")
		id = vg.name + "/" + id // two VGs of one name are told apart by id, and the other way round
		b := newest[id]
		if b == nil {
			b = &best{}
			newest[id] = b
			order = append(order, id)
		}
		if b.vg == nil || pv.seqno > b.seqno {
			b.vg, b.seqno = vg, pv.seqno
		}
	}
	var out []*VG
	for _, id := range order {
		b := newest[id]
		vg, err := buildVG(b.vg, b.seqno, byUUID)
		if err != nil {
			return nil, fmt.Errorf("VG %s: %w", b.vg.name, err)
		}
		out = append(out, vg)
	}
	return out, nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// mul returns a*b if both are non-negative and the product stays below maxBytes.
func mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a != 0 && b > maxBytes/a {
		return 0, false
	}
	return a * b, true
}

func buildVG(s *section, seqno int64, byUUID map[string]*PV) (*VG, error) {
	vg := &VG{Name: s.name, Seqno: seqno}
	vg.UUID, _ = s.str("id")
	es, ok := s.int("extent_size")
	if !ok || es <= 0 || es > maxExtentSector {
		return nil, corruptf("extent_size %v", s.keys["extent_size"].str)
	}
	vg.ExtentSize = es * sectorSize
	pvSecs := s.sub("physical_volumes").sections
	if len(pvSecs) > maxPVs {
		return nil, corruptf("%d PVs", len(pvSecs))
	}
	vg.PVs = make([]PVInfo, 0, len(pvSecs))
	for _, ps := range pvSecs {
		p := PVInfo{Name: ps.name}
		id, ok := ps.str("id")
		if !ok || len(normUUID(id)) != 32 {
			return nil, corruptf("PV %s: id %q", ps.name, id)
		}
		p.UUID = printUUID(normUUID(id))
		p.Device, _ = ps.str("device")
		start, ok1 := ps.int("pe_start")
		count, ok2 := ps.int("pe_count")
		if !ok1 || !ok2 {
			return nil, corruptf("PV %s: pe_start or pe_count missing", ps.name)
		}
		var okS, okE bool
		p.PEStart, okS = mul(start, sectorSize)
		p.PECount = count
		span, okE := mul(count, vg.ExtentSize)
		if !okS || !okE || p.PEStart+span > maxBytes {
			return nil, corruptf("PV %s: pe_start %d, pe_count %d", ps.name, start, count)
		}
		if pv := byUUID[normUUID(id)]; pv != nil {
			if end := p.PEStart + span; end > pv.size {
				return nil, corruptf("PV %s (%s): %d extents from byte %d end at %d, past the device's %d bytes",
					ps.name, p.UUID, count, p.PEStart, end, pv.size)
			}
			p.Present, p.pv = true, pv
		}
		vg.PVs = append(vg.PVs, p)
	}
	pvByName := map[string]*PVInfo{}
	for i := range vg.PVs {
		pvByName[vg.PVs[i].Name] = &vg.PVs[i]
	}
	lvsSec := s.sub("logical_volumes")
	if lvsSec == nil {
		return vg, nil
	}
	if len(lvsSec.sections) > maxLVs {
		return nil, corruptf("%d LVs", len(lvsSec.sections))
	}
	used := map[string][][2]int64{} // PV name → extent ranges [start, end) claimed by linear segments
	segments := 0
	for _, ls := range lvsSec.sections {
		lv, err := buildLV(vg, ls, pvByName, &segments)
		if err != nil {
			return nil, fmt.Errorf("LV %s: %w", ls.name, err)
		}
		for _, seg := range lv.Segments {
			if seg.Type != "striped" && seg.Type != "linear" {
				continue
			}
			per := seg.ExtentCount / int64(len(seg.Stripes))
			for _, st := range seg.Stripes {
				used[st.PV] = append(used[st.PV], [2]int64{st.StartExtent, st.StartExtent + per})
			}
		}
		vg.lvs = append(vg.lvs, lv)
	}
	// Two LVs (or two segments) on the same physical extents would alias each other's data.
	for name, rs := range used {
		sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
		for i := 1; i < len(rs); i++ {
			if rs[i][0] < rs[i-1][1] {
				return nil, corruptf("PV %s: extents %d-%d allocated twice", name, rs[i][0], min(rs[i][1], rs[i-1][1])-1)
			}
		}
	}
	return vg, nil
}

func buildLV(vg *VG, ls *section, pvByName map[string]*PVInfo, segments *int) (LV, error) {
	lv := LV{VG: vg.Name, Name: ls.name, extentSize: vg.ExtentSize, pvs: map[string]*PVInfo{}}
	lv.UUID, _ = ls.str("id")
	var ok bool
	if lv.Status, ok = ls.strings("status"); !ok {
		return lv, corruptf("status is not a list of strings")
	}
	if lv.Flags, ok = ls.strings("flags"); !ok {
		return lv, corruptf("flags is not a list of strings")
	}
	if lv.Tags, ok = ls.strings("tags"); !ok {
		return lv, corruptf("tags is not a list of strings")
	}
	lv.Visible = slices.Contains(lv.Status, "VISIBLE")
	var next int64 // logical extents must follow each other from 0 without gap or overlap
	for _, ss := range ls.sections {
		*segments++
		if *segments > maxSegments {
			return lv, corruptf("more than %d segments in the VG", maxSegments)
		}
		seg, err := buildSegment(ss)
		if err != nil {
			return lv, fmt.Errorf("%s: %w", ss.name, err)
		}
		lv.Segments = append(lv.Segments, seg)
	}
	sort.SliceStable(lv.Segments, func(i, j int) bool { return lv.Segments[i].StartExtent < lv.Segments[j].StartExtent })
	for _, seg := range lv.Segments {
		if seg.StartExtent != next {
			return lv, corruptf("segment at extent %d, expected %d (gap or overlap)", seg.StartExtent, next)
		}
		next = seg.StartExtent + seg.ExtentCount
		if next > maxBytes/vg.ExtentSize {
			return lv, corruptf("%d extents", next)
		}
		if seg.Type != "striped" && seg.Type != "linear" {
			if lv.reason == nil {
				lv.reason = fmt.Errorf("LV %s: segment type %q: %w", lv.FullName(), seg.Type, ErrUnsupported)
			}
			continue
		}
		if len(seg.Stripes) > 1 && lv.reason == nil {
			lv.reason = fmt.Errorf("LV %s: striped over %d PVs: %w", lv.FullName(), len(seg.Stripes), ErrUnsupported)
		}
		per := seg.ExtentCount / int64(len(seg.Stripes))
		for _, st := range seg.Stripes {
			p := pvByName[st.PV]
			if p == nil {
				return lv, corruptf("segment at extent %d on unknown PV %q", seg.StartExtent, st.PV)
			}
			if st.StartExtent > p.PECount || per > p.PECount-st.StartExtent {
				return lv, corruptf("segment at extent %d: PV %s extents %d-%d past its %d extents",
					seg.StartExtent, st.PV, st.StartExtent, st.StartExtent+per-1, p.PECount)
			}
			if !p.Present && lv.reason == nil {
				lv.reason = fmt.Errorf("LV %s needs PV %s (%s, last seen as %s), which is not on this disk: %w",
					lv.FullName(), p.Name, p.UUID, p.Device, ErrMissingPV)
			}
			lv.pvs[st.PV] = p
		}
	}
	lv.Size = next * vg.ExtentSize
	if n, ok := ls.int("segment_count"); ok && n != int64(len(lv.Segments)) {
		return lv, corruptf("segment_count %d but %d segments", n, len(lv.Segments))
	}
	return lv, nil
}

func buildSegment(ss *section) (Segment, error) {
	var seg Segment
	var ok1, ok2 bool
	seg.StartExtent, ok1 = ss.int("start_extent")
	seg.ExtentCount, ok2 = ss.int("extent_count")
	seg.Type, _ = ss.str("type")
	if !ok1 || !ok2 || seg.StartExtent < 0 || seg.ExtentCount <= 0 || seg.StartExtent > math.MaxInt64-seg.ExtentCount {
		return seg, corruptf("start_extent/extent_count missing or out of range")
	}
	if seg.Type != "striped" && seg.Type != "linear" {
		return seg, nil // described, not mapped
	}
	v, ok := ss.keys["stripes"]
	if !ok || v.kind != kindArray || len(v.items) == 0 || len(v.items)%2 != 0 || len(v.items)/2 > maxStripes {
		return seg, corruptf("stripes must be a list of PV name, extent pairs")
	}
	for i := 0; i < len(v.items); i += 2 {
		name, ext := v.items[i], v.items[i+1]
		if name.kind != kindString || ext.kind != kindNumber {
			return seg, corruptf("stripe %d is not a PV name and an extent", i/2)
		}
		st := Stripe{PV: name.str}
		var err error
		if st.StartExtent, err = parseExtent(ext.str); err != nil {
			return seg, corruptf("stripe %d: %v", i/2, err)
		}
		seg.Stripes = append(seg.Stripes, st)
	}
	if n, ok := ss.int("stripe_count"); ok && n != int64(len(seg.Stripes)) {
		return seg, corruptf("stripe_count %d but %d stripes", n, len(seg.Stripes))
	}
	if seg.ExtentCount%int64(len(seg.Stripes)) != 0 {
		return seg, corruptf("%d extents do not divide over %d stripes", seg.ExtentCount, len(seg.Stripes))
	}
	return seg, nil
}

func parseExtent(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("extent %q", s)
	}
	return n, nil
}

// lvReader maps reads of a linear LV onto its PVs.
type lvReader struct{ lv LV }

func (r *lvReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("LV %s: negative offset %d", r.lv.FullName(), off)
	}
	n := 0
	for len(b) > 0 {
		if off >= r.lv.Size {
			return n, io.EOF
		}
		le := off / r.lv.extentSize
		i := sort.Search(len(r.lv.Segments), func(i int) bool {
			s := r.lv.Segments[i]
			return s.StartExtent+s.ExtentCount > le
		})
		seg := r.lv.Segments[i]
		st := seg.Stripes[0]
		p := r.lv.pvs[st.PV]
		segOff := off - seg.StartExtent*r.lv.extentSize
		segEnd := seg.ExtentCount * r.lv.extentSize
		chunk := min(int64(len(b)), segEnd-segOff)
		pvOff := p.PEStart + st.StartExtent*r.lv.extentSize + segOff
		m, err := p.pv.r.ReadAt(b[:chunk], pvOff)
		n += m
		if err != nil && !(err == io.EOF && int64(m) == chunk) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("LV %s: read PV %s at byte %d: %w", r.lv.FullName(), st.PV, pvOff, err)
		}
		b, off = b[chunk:], off+chunk
	}
	return n, nil
}
