package lvm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readGz returns a testdata PV written by testdata/gen.sh with the real lvm2 tools.
func readGz(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".pv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layoutSegment is one "segment <lv> <first LE> <extents> <pv file> <first PE> <pe_start>" line
// of a .layout file: what lvs and pvs answered when the PV was made.
type layoutSegment struct {
	lv                 string
	le, count, pe      int64
	file               string
	peStart, extentLen int64
}

func readLayout(t *testing.T, name string) (segs []layoutSegment, extra map[string]string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".layout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extra = map[string]string{}
	var extent int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 2 && fs[0] == "extent_size":
			fmt.Sscan(fs[1], &extent)
		case len(fs) == 7 && fs[0] == "segment":
			s := layoutSegment{lv: fs[1], file: fs[4], extentLen: extent}
			fmt.Sscan(fs[2], &s.le)
			fmt.Sscan(fs[3], &s.count)
			fmt.Sscan(fs[5], &s.pe)
			fmt.Sscan(fs[6], &s.peStart)
			segs = append(segs, s)
		case len(fs) == 2:
			extra[fs[0]] = fs[1]
		}
	}
	if len(segs) == 0 || extent == 0 {
		t.Fatalf("%s.layout: no segments", name)
	}
	return segs, extra
}

// checkStamps reads every extent of every LV the layout lists and expects gen.sh's stamp
// "<lv>:<le>" at its start, and checks the tool-reported PV offset holds the same bytes.
func checkStamps(t *testing.T, vg *VG, segs []layoutSegment, pvs map[string][]byte) {
	t.Helper()
	lvs := map[string]LV{}
	for _, lv := range vg.LVs() {
		lvs[lv.Name] = lv
	}
	for _, s := range segs {
		lv, ok := lvs[s.lv]
		if !ok {
			t.Fatalf("LV %s not found", s.lv)
		}
		r, err := lv.Open()
		if err != nil {
			t.Fatalf("open %s: %v", lv.FullName(), err)
		}
		for i := range s.count {
			le := s.le + i
			want := fmt.Sprintf("%s:%d", s.lv, le)
			got := make([]byte, 16)
			if _, err := r.ReadAt(got, le*s.extentLen); err != nil {
				t.Fatalf("%s extent %d: %v", lv.FullName(), le, err)
			}
			if string(bytes.TrimRight(got, "\x00")) != want {
				t.Errorf("%s extent %d reads %q, want %q", lv.FullName(), le, got, want)
			}
			pvOff := s.peStart + (s.pe+i)*s.extentLen
			if raw := pvs[s.file][pvOff : pvOff+16]; !bytes.Equal(raw, got) {
				t.Errorf("%s extent %d: PV %s byte %d holds %q, LV read %q", lv.FullName(), le, s.file, pvOff, raw, got)
			}
		}
	}
}

func TestDebianLayout(t *testing.T) {
	b := readGz(t, "debian")
	segs, _ := readLayout(t, "debian")
	vg, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if vg.Name != "debian-vg" || vg.ExtentSize != 1<<20 || len(vg.PVs) != 1 || !vg.PVs[0].Present || len(vg.Missing()) != 0 {
		t.Fatalf("VG %+v", vg)
	}
	lvs := vg.LVs()
	if len(lvs) != 2 || lvs[0].Name != "root" || lvs[1].Name != "swap_1" {
		t.Fatalf("LVs %+v", lvs)
	}
	root := lvs[0]
	if root.Size != 24<<20 || len(root.Segments) != 2 || !root.Visible || root.FullName() != "debian-vg/root" ||
		strings.Join(root.Tags, ",") != "boot-me" || root.Readable() != nil {
		t.Errorf("root %+v", root)
	}
	if lvs[1].Size != 4<<20 {
		t.Errorf("swap_1 size %d", lvs[1].Size)
	}
	checkStamps(t, vg, segs, map[string][]byte{"debian.pv": b})

	// A read across the segment boundary (LE 7 → 8, PE 7 → 12) and past the end.
	r, _ := root.Open()
	buf := make([]byte, 32)
	if _, err := r.ReadAt(buf, 8<<20-16); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimRight(buf[16:], "\x00")); got != "root:8" {
		t.Errorf("read across segments: second half %q", got)
	}
	if n, err := r.ReadAt(buf, root.Size-10); n != 10 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
}

func TestTwoMetadataAreas(t *testing.T) {
	b := readGz(t, "debian")
	pv, err := ReadPV(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.mdas) != 2 {
		t.Fatalf("gen.sh made the PV with --pvmetadatacopies 2, found %d areas", len(pv.mdas))
	}
	// Damage the first area's text: the second still has the VG.
	first := textOffset(t, b, pv.mdas[0])
	bad := bytes.Clone(b)
	bad[first+5] ^= 0xff
	vg, err := Open(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatalf("one bad area: %v", err)
	}
	if len(vg.LVs()) != 2 {
		t.Errorf("LVs from the second area: %+v", vg.LVs())
	}
	pv2, _ := ReadPV(bytes.NewReader(bad), int64(len(bad)))
	if len(pv2.Warnings()) != 1 || !strings.Contains(pv2.Warnings()[0], "checksum") {
		t.Errorf("warnings %q", pv2.Warnings())
	}
	// Both damaged: nothing to trust.
	second := textOffset(t, b, pv.mdas[1])
	bad[second+5] ^= 0xff
	if _, err := Open(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("both areas bad: %v", err)
	}
}

// textOffset returns the absolute byte offset of an area's committed metadata text.
func textOffset(t *testing.T, b []byte, a area) int {
	t.Helper()
	return int(a.Offset + binary.LittleEndian.Uint64(b[a.Offset+40:]))
}

func TestSpanningVG(t *testing.T) {
	b1, b2 := readGz(t, "span1"), readGz(t, "span2")
	segs, extra := readLayout(t, "span")
	pv1, err := ReadPV(bytes.NewReader(b1), int64(len(b1)))
	if err != nil {
		t.Fatal(err)
	}
	pv2, err := ReadPV(bytes.NewReader(b2), int64(len(b2)))
	if err != nil {
		t.Fatal(err)
	}
	if pv1.UUID != extra["span1.pv"] || pv2.UUID != extra["span2.pv"] {
		t.Errorf("PV uuids %s %s, pvs said %s %s", pv1.UUID, pv2.UUID, extra["span1.pv"], extra["span2.pv"])
	}
	vgs, err := Assemble(pv2, pv1)
	if err != nil {
		t.Fatal(err)
	}
	if len(vgs) != 1 || vgs[0].Name != "rootvg" || len(vgs[0].Missing()) != 0 {
		t.Fatalf("VGs %+v", vgs)
	}
	checkStamps(t, vgs[0], segs, map[string][]byte{"span1.pv": b1, "span2.pv": b2})

	// Only the first PV: the VG is known, its root LV is not readable and the error names the PV.
	vg, err := Open(bytes.NewReader(b1), int64(len(b1)))
	if err != nil {
		t.Fatal(err)
	}
	if m := vg.Missing(); len(m) != 1 || m[0] != pv2.UUID {
		t.Errorf("missing %v, want [%s]", m, pv2.UUID)
	}
	_, err = vg.LVs()[0].Open()
	if !errors.Is(err, ErrMissingPV) || !strings.Contains(err.Error(), pv2.UUID) || !strings.Contains(err.Error(), "rootvg/root") {
		t.Errorf("open with a PV missing: %v", err)
	}
	if _, err := Assemble(pv1, pv1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("same PV twice: %v", err)
	}
}

func TestWrappedMetadata(t *testing.T) {
	b := readGz(t, "wrap")
	segs, extra := readLayout(t, "wrap")
	pv, err := ReadPV(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	a := pv.mdas[0]
	off, size := binary.LittleEndian.Uint64(b[a.Offset+40:]), binary.LittleEndian.Uint64(b[a.Offset+48:])
	if off+size <= a.Size {
		t.Fatalf("testdata does not wrap: text at %d+%d in a %d-byte area", off, size, a.Size)
	}
	vg, err := Assemble(pv)
	if err != nil {
		t.Fatal(err)
	}
	lv := vg[0].LVs()[0]
	n := 0
	fmt.Sscan(extra["wrapped_after"], &n)
	if len(lv.Tags) != n || lv.Tags[n-1] != fmt.Sprintf("tag%d", n) {
		t.Errorf("tags %v, want tag1..tag%d", lv.Tags, n)
	}
	checkStamps(t, vg[0], segs, map[string][]byte{"wrap.pv": b})
}

func TestNotLVM(t *testing.T) {
	if _, err := Open(bytes.NewReader(make([]byte, 1<<16)), 1<<16); !errors.Is(err, ErrNotLVM) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := Open(bytes.NewReader(make([]byte, 100)), 100); !errors.Is(err, ErrNotLVM) {
		t.Errorf("tiny: %v", err)
	}
}
