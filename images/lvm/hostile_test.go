package lvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// synth describes a small PV built in Go, so tests can write metadata no lvm2 tool would.
type synth struct {
	size    int64  // device bytes (default 4 MiB)
	mdaSize uint64 // metadata area bytes at offset 4096 (default 60 KiB)
	text    string // committed metadata text
	textOff uint64 // text offset inside the area (default 512, right after the header)
	textLen uint64 // raw_locn size to record (default len(text))
	uuid    string // 32 characters
	// edit runs on the finished image, to damage it after the checksums were computed.
	edit func(b []byte)
}

const synthUUID = "AbCdEf0123456789AbCdEf0123456789"

func (s synth) build() []byte {
	if s.size == 0 {
		s.size = 4 << 20
	}
	if s.mdaSize == 0 {
		s.mdaSize = 60 << 10
	}
	if s.textOff == 0 {
		s.textOff = mdaHeaderSize
	}
	if s.uuid == "" {
		s.uuid = synthUUID
	}
	if s.textLen == 0 {
		s.textLen = uint64(len(s.text))
	}
	le := binary.LittleEndian
	b := make([]byte, s.size)
	// Label in sector 1, PV header right after it.
	lab := b[512:1024]
	copy(lab, "LABELONE")
	le.PutUint64(lab[8:], 1)
	le.PutUint32(lab[20:], 32)
	copy(lab[24:], "LVM2 001")
	h := lab[32:]
	copy(h, s.uuid)
	le.PutUint64(h[32:], uint64(s.size))
	le.PutUint64(h[40:], 1<<20) // data area from 1 MiB to the end
	le.PutUint64(h[72:], 4096)  // metadata area
	le.PutUint64(h[80:], s.mdaSize)
	le.PutUint32(lab[16:], crc(lab[20:]))
	// Metadata area header and text (wrapping like LVM's circular buffer if it must).
	m := b[4096:]
	copy(m[4:], mdaMagic)
	le.PutUint32(m[20:], 1)
	le.PutUint64(m[24:], 4096)
	le.PutUint64(m[32:], s.mdaSize)
	if s.text != "" {
		le.PutUint64(m[40:], s.textOff)
		le.PutUint64(m[48:], s.textLen)
		le.PutUint32(m[56:], crc([]byte(s.text)))
		for i := range len(s.text) {
			pos := s.textOff + uint64(i)
			if pos >= s.mdaSize {
				pos = pos - s.mdaSize + mdaHeaderSize
			}
			m[pos] = s.text[i]
		}
	}
	le.PutUint32(m[0:], crc(m[4:mdaHeaderSize]))
	if s.edit != nil {
		s.edit(b)
	}
	return b
}

// vgText is a VG "vg" with extent size 1 MiB and PV pv0 (synthUUID) with pe_start 1 MiB and
// peCount extents, and the given logical_volumes body.
func vgText(peCount int, lvs string) string {
	return fmt.Sprintf(`vg {
id = "vgid00-0000-0000-0000-0000-0000-000000"
seqno = 3
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 2048
physical_volumes {
pv0 {
id = "AbCdEf-0123-4567-89Ab-CdEf-0123-456789"
device = "/dev/vda2"
status = ["ALLOCATABLE"]
dev_size = 8192
pe_start = 2048
pe_count = %d
}
}
logical_volumes {
%s
}
}
contents = "Text Format Volume Group"
version = 1
`, peCount, lvs)
}

// linearLV is an LV section with one linear segment per (start extent, count, PV extent).
func linearLV(name string, segs ...[3]int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s {\nid = \"lvid\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nsegment_count = %d\n", name, len(segs))
	for i, s := range segs {
		fmt.Fprintf(&sb, "segment%d {\nstart_extent = %d\nextent_count = %d\ntype = \"striped\"\nstripe_count = 1\nstripes = [\n\"pv0\", %d\n]\n}\n",
			i+1, s[0], s[1], s[2])
	}
	sb.WriteString("}\n")
	return sb.String()
}

func typedLV(name, typ, extra string, visible bool) string {
	st := `"READ", "WRITE"`
	if visible {
		st += `, "VISIBLE"`
	}
	return fmt.Sprintf("%s {\nid = \"x\"\nstatus = [%s]\nsegment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 1\ntype = %q\n%s\n}\n}\n",
		name, st, typ, extra)
}

func openSynth(s synth) (*VG, error) {
	b := s.build()
	return Open(bytes.NewReader(b), int64(len(b)))
}

func TestSynthLinear(t *testing.T) {
	// Two segments out of order in PV space: LE 0-1 on PE 1-2, LE 2 on PE 0.
	s := synth{text: vgText(3, linearLV("root", [3]int{0, 2, 1}, [3]int{2, 1, 0}))}
	b := s.build()
	copy(b[1<<20:], "PE0")
	copy(b[2<<20:], "PE1")
	copy(b[3<<20:], "PE2")
	vg, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := vg.LVs()[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	for le, want := range []string{"PE1", "PE2", "PE0"} {
		got := make([]byte, 3)
		if _, err := r.ReadAt(got, int64(le)<<20); err != nil || string(got) != want {
			t.Errorf("LE %d: %q %v, want %q", le, got, err, want)
		}
	}
	// The same text wrapped around the end of the circular buffer.
	w := synth{text: s.text, mdaSize: 8192, textOff: 8192 - 100}
	if _, err := openSynth(w); err != nil {
		t.Errorf("wrapped text: %v", err)
	}
}

func TestHostile(t *testing.T) {
	good := vgText(3, linearLV("root", [3]int{0, 3, 0}))
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		s    synth
		want error
		msg  string
	}{
		{"segment past the PV's extents", synth{text: vgText(3, linearLV("root", [3]int{0, 2, 2}))}, ErrCorrupt, "past its 3 extents"},
		{"extents past the device", synth{text: vgText(40, linearLV("root", [3]int{0, 3, 0}))}, ErrCorrupt, "past the device"},
		{"two LVs on one extent", synth{text: vgText(3, linearLV("a", [3]int{0, 2, 0})+linearLV("b", [3]int{0, 1, 1}))}, ErrCorrupt, "allocated twice"},
		{"gap between segments", synth{text: vgText(3, linearLV("root", [3]int{0, 1, 0}, [3]int{2, 1, 1}))}, ErrCorrupt, "gap or overlap"},
		{"overlapping segments", synth{text: vgText(3, linearLV("root", [3]int{0, 2, 0}, [3]int{1, 1, 2}))}, ErrCorrupt, "gap or overlap"},
		{"unknown PV", synth{text: strings.Replace(good, `"pv0", 0`, `"pv7", 0`, 1)}, ErrCorrupt, "unknown PV"},
		{"negative extent", synth{text: strings.Replace(good, `"pv0", 0`, `"pv0", -1`, 1)}, ErrCorrupt, "extent"},
		{"zero extent size", synth{text: strings.Replace(good, "extent_size = 2048", "extent_size = 0", 1)}, ErrCorrupt, "extent_size"},
		{"huge extent count", synth{text: strings.Replace(good, "pe_count = 3", "pe_count = 9000000000000000000", 1)}, ErrCorrupt, "pe_count"},
		{"huge pe_start", synth{text: strings.Replace(good, "pe_start = 2048", "pe_start = 9000000000000000000", 1)}, ErrCorrupt, "pe_start"},
		{"huge extent_count", synth{text: strings.Replace(good, "extent_count = 3", "extent_count = 9223372036854775807", 1)}, ErrCorrupt, ""},
		{"stripe_count disagrees", synth{text: strings.Replace(good, "stripe_count = 1", "stripe_count = 2", 1)}, ErrCorrupt, "stripe_count"},
		{"segment_count disagrees", synth{text: strings.Replace(good, "segment_count = 1", "segment_count = 5", 1)}, ErrCorrupt, "segment_count"},
		{"odd stripes list", synth{text: strings.Replace(good, `"pv0", 0`, `"pv0"`, 1)}, ErrCorrupt, "pairs"},
		{"no seqno", synth{text: strings.Replace(good, "seqno = 3", "", 1)}, ErrCorrupt, "seqno"},
		{"no VG section", synth{text: "contents = \"Text Format Volume Group\"\n"}, ErrCorrupt, "no volume group"},
		{"two VG sections", synth{text: good + strings.Replace(good, "vg {", "vg2 {", 1)[0:len(good)-len("contents = \"Text Format Volume Group\"\nversion = 1\n")]}, ErrCorrupt, ""},
		{"nesting bomb", synth{text: strings.Repeat("a {\n", 1000)}, ErrCorrupt, "nested deeper"},
		{"unparsable text", synth{text: "vg { physical_volumes { ] } }"}, ErrCorrupt, "line 1"},
		{"text larger than 1 MiB", synth{size: 8 << 20, mdaSize: 3 << 20, text: good, textLen: 2 << 20}, ErrCorrupt, "exceeds"},
		{"text larger than its buffer (would read itself twice)", synth{text: good, mdaSize: 4096, textLen: 4000}, ErrCorrupt, "outside"},
		{"text offset inside the header", synth{text: good, textOff: 100}, ErrCorrupt, "outside"},
		{"area past the device", synth{text: good, size: 40 << 10, mdaSize: 60 << 10}, ErrCorrupt, "outside the"},
		{"text checksum", synth{text: good, edit: func(b []byte) { b[4096+512+3] ^= 1 }}, ErrCorrupt, "text checksum"},
		{"label checksum", synth{text: good, edit: func(b []byte) { b[512+40] ^= 1 }}, ErrCorrupt, "label checksum"},
		{"label in the wrong sector", synth{text: good, edit: func(b []byte) {
			le.PutUint64(b[512+8:], 2)
		}}, ErrCorrupt, "sector"},
		{"PV header offset outside the sector", synth{text: good, edit: func(b []byte) {
			le.PutUint32(b[512+20:], 500)
			le.PutUint32(b[512+16:], crc(b[512+20:1024]))
		}}, ErrCorrupt, "PV header at offset"},
		{"endless area list", synth{text: good, edit: func(b []byte) {
			for o := 512 + 32 + 40; o+16 <= 1024; o += 16 {
				le.PutUint64(b[o:], 4096)
				le.PutUint64(b[o+8:], 4096)
			}
			le.PutUint32(b[512+16:], crc(b[512+20:1024]))
		}}, ErrCorrupt, "areas"},
		{"area header checksum", synth{text: good, edit: func(b []byte) { b[4096+30] ^= 1 }}, ErrCorrupt, "header checksum"},
		{"area header start disagrees", synth{text: good, edit: func(b []byte) {
			le.PutUint64(b[4096+24:], 8192)
			le.PutUint32(b[4096:], crc(b[4096+4:4096+512]))
		}}, ErrCorrupt, "header says"},
		{"area magic", synth{text: good, edit: func(b []byte) {
			b[4096+5] = 'x'
			le.PutUint32(b[4096:], crc(b[4096+4:4096+512]))
		}}, ErrCorrupt, "magic"},
		{"orphan PV", synth{}, ErrNoVG, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openSynth(tc.s)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Errorf("got %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestUnsupportedLVs(t *testing.T) {
	lvs := linearLV("root", [3]int{0, 1, 0}) +
		typedLV("pool", "thin-pool", `metadata = "pool_tmeta"`+"\n"+`pool = "pool_tdata"`, true) +
		typedLV("thin", "thin", `thin_pool = "pool"`+"\n"+`device_id = 1`, true) +
		typedLV("snap", "snapshot", `origin = "root"`+"\n"+`cow_store = "x"`, true) +
		typedLV("r", "raid1", `device_count = 2`, true) +
		typedLV("m", "mirror", `mirror_count = 2`, true) +
		typedLV("c", "cache", `cache_pool = "cp"`, true) +
		typedLV("hidden_tmeta", "striped", `stripe_count = 1`+"\n"+`stripes = ["pv0", 1]`, false) +
		`st {
status = ["READ", "WRITE", "VISIBLE"]
segment1 {
start_extent = 0
extent_count = 2
type = "striped"
stripe_count = 2
stripe_size = 128
stripes = ["pv0", 2, "pv0", 3]
}
}
`
	vg, err := openSynth(synth{size: 8 << 20, text: vgText(4, lvs)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]LV{}
	for _, lv := range vg.LVs() {
		got[lv.Name] = lv
	}
	for name, want := range map[string]string{"pool": "thin-pool", "thin": `"thin"`, "snap": "snapshot", "r": "raid1",
		"m": "mirror", "c": "cache", "st": "striped over 2 PVs"} {
		lv := got[name]
		_, err := lv.Open()
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), want) || !errors.Is(lv.Readable(), ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported naming %s", name, err, want)
		}
	}
	if _, err := got["root"].Open(); err != nil {
		t.Errorf("root: %v", err)
	}
	if h := got["hidden_tmeta"]; h.Visible || h.Readable() != nil {
		t.Errorf("hidden LV: visible %v, readable %v", h.Visible, h.Readable())
	}
	if got["root"].Visible != true {
		t.Errorf("root not visible")
	}
}

// fuzzPV lays a fuzz input out as a 12 KiB PV: its first 512 bytes are the label sector
// (sector 1), the rest is written at 4096, where the metadata area (header, then text) starts.
// Keeping the input to the bytes that mean something keeps it small: the fuzzer minimizes every
// new input byte by byte, which stalls on inputs of many KiB.
func fuzzPV(in []byte) []byte {
	pv := make([]byte, 12<<10)
	copy(pv[512:1024], in)
	if len(in) > 512 {
		copy(pv[4096:], in[512:])
	}
	return pv
}

// fuzzInput is the inverse of fuzzPV for a synthesized PV.
func fuzzInput(pv []byte) []byte {
	return append(bytes.Clone(pv[512:1024]), bytes.TrimRight(pv[4096:8192], "\x00")...)
}

// FuzzOpen feeds arbitrary label and metadata-area bytes as a PV (see fuzzPV): Open, then every
// readable LV is read in full. It must end with an error or data, never a panic, and never read
// more than the PV holds.
func FuzzOpen(f *testing.F) {
	f.Add(fuzzInput(synth{size: 12 << 10, mdaSize: 4 << 10, text: vgText(0, "")}.build()))
	for _, lvs := range []string{
		linearLV("root", [3]int{0, 2, 1}, [3]int{2, 1, 0}),
		typedLV("pool", "thin-pool", `metadata = "m"`, true),
	} {
		f.Add(fuzzInput(synth{size: 12 << 10, mdaSize: 4 << 10, text: tinyExtents(vgText(3, lvs))}.build()))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		data := fuzzPV(in)
		vg, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, lv := range vg.LVs() {
			r, err := lv.Open()
			if err != nil {
				continue
			}
			if lv.Size > int64(len(data)) {
				t.Fatalf("LV %s of %d bytes on a %d-byte PV", lv.FullName(), lv.Size, len(data))
			}
			buf := make([]byte, lv.Size)
			if _, err := r.ReadAt(buf, 0); err != nil {
				t.Fatalf("read LV %s: %v", lv.FullName(), err)
			}
		}
	})
}

// tinyExtents turns vgText's 1 MiB extents from 1 MiB into 512-byte extents from 8 KiB, so a
// VG fits a fuzz input of a few KiB.
func tinyExtents(text string) string {
	text = strings.Replace(text, "extent_size = 2048", "extent_size = 1", 1)
	return strings.Replace(text, "pe_start = 2048", "pe_start = 16", 1)
}

// FuzzMetadataText feeds arbitrary metadata text (past the checksums FuzzOpen's mutations rarely
// get through) to the parser and the VG builder, with one 32 KiB PV matching pv0.
func FuzzMetadataText(f *testing.F) {
	f.Add(tinyExtents(vgText(3, linearLV("root", [3]int{0, 2, 1}, [3]int{2, 1, 0}))))
	f.Add(tinyExtents(vgText(3, typedLV("thin", "thin", `thin_pool = "pool"`, true)+linearLV("a", [3]int{0, 1, 0}))))
	f.Add("vg {\nphysical_volumes {\n}\nseqno = 1\n}\n")
	f.Fuzz(func(t *testing.T, text string) {
		root, err := parseText([]byte(text))
		if err != nil {
			return
		}
		vgs := vgSection(root)
		if vgs == nil {
			return
		}
		data := make([]byte, 32<<10)
		pv := &PV{UUID: printUUID(synthUUID), r: bytes.NewReader(data), size: int64(len(data))}
		vg, err := buildVG(vgs, 1, map[string]*PV{synthUUID: pv})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		for _, lv := range vg.LVs() {
			r, err := lv.Open()
			if err != nil {
				continue
			}
			if lv.Size > int64(len(data)) {
				t.Fatalf("LV %s of %d bytes on a %d-byte PV", lv.FullName(), lv.Size, len(data))
			}
			if _, err := r.ReadAt(make([]byte, lv.Size), 0); err != nil {
				t.Fatalf("read LV %s: %v", lv.FullName(), err)
			}
		}
	})
}

func TestNewestMetadataWins(t *testing.T) {
	const uuidB = "ZyXwVu9876543210ZyXwVu9876543210"
	text := func(seqno int, lv string) string {
		return fmt.Sprintf(`vg {
id = "vgid00-0000-0000-0000-0000-0000-000000"
seqno = %d
extent_size = 2048
physical_volumes {
pv0 {
id = "AbCdEf-0123-4567-89Ab-CdEf-0123-456789"
pe_start = 2048
pe_count = 3
}
pv1 {
id = "%s"
pe_start = 2048
pe_count = 3
}
}
logical_volumes {
%s}
}
`, seqno, printUUID(uuidB), linearLV(lv, [3]int{0, 1, 0}))
	}
	a := synth{text: text(3, "old")}.build()
	b := synth{text: text(5, "new"), uuid: uuidB}.build()
	pa, err := ReadPV(bytes.NewReader(a), int64(len(a)))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ReadPV(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*PV{{pa, pb}, {pb, pa}} {
		vgs, err := Assemble(order...)
		if err != nil {
			t.Fatal(err)
		}
		if len(vgs) != 1 || vgs[0].Seqno != 5 || vgs[0].LVs()[0].Name != "new" || len(vgs[0].Missing()) != 0 {
			t.Errorf("VGs %+v", vgs)
		}
	}
}
