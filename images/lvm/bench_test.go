package lvm

import (
	"bytes"
	"testing"
)

// BenchmarkLVRead reads debian-vg/root (24 MiB in two segments) in 64 KiB requests through the
// extent mapping, from memory: the mapping's own cost per byte.
func BenchmarkLVRead(b *testing.B) {
	pv := readGz(b, "debian")
	vg, err := Open(bytes.NewReader(pv), int64(len(pv)))
	if err != nil {
		b.Fatal(err)
	}
	lv := vg.LVs()[0]
	r, err := lv.Open()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(lv.Size)
	for b.Loop() {
		for off := int64(0); off < lv.Size; off += int64(len(buf)) {
			if _, err := r.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkOpen parses a real PV: label, two metadata areas, text, VG.
func BenchmarkOpen(b *testing.B) {
	pv := readGz(b, "debian")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(bytes.NewReader(pv), int64(len(pv))); err != nil {
			b.Fatal(err)
		}
	}
}
