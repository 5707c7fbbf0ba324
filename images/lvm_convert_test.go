package images

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// The PVs in images/lvm/testdata were made by the lvm2 tools (gen.sh there); their .layout
// files record where lvs and pvs said each LV segment lies. These tests put filesystems into
// those LVs by that layout — not by images/lvm's own mapping — and convert the disk.

// lvmSegment is one "segment <lv> <first LE> <extents> <pv file> <first PE> <pe_start>" line.
type lvmSegment struct {
	lv, pvFile             string
	le, count, pe, peStart int64
	extentSize             int64
}

func readLVMLayout(t *testing.T, name string) []lvmSegment {
	t.Helper()
	f, err := os.Open(filepath.Join("lvm", "testdata", name+".layout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var segs []lvmSegment
	var extent int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 2 && fs[0] == "extent_size":
			fmt.Sscan(fs[1], &extent)
		case len(fs) == 7 && fs[0] == "segment":
			s := lvmSegment{lv: fs[1], pvFile: fs[4], extentSize: extent}
			fmt.Sscan(fs[2], &s.le)
			fmt.Sscan(fs[3], &s.count)
			fmt.Sscan(fs[5], &s.pe)
			fmt.Sscan(fs[6], &s.peStart)
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 || extent == 0 {
		t.Fatalf("%s.layout has no segments", name)
	}
	return segs
}

// lvmPVFile unpacks a testdata PV into dir.
func lvmPVFile(t *testing.T, dir, name string) string {
	t.Helper()
	in, err := os.Open(filepath.Join("lvm", "testdata", name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	z, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, z); err != nil {
		t.Fatal(err)
	}
	return out
}

// fillLV writes content (a filesystem image no larger than the LV) into the LV's extents of
// the PV files, segment by segment as the layout says.
func fillLV(t *testing.T, segs []lvmSegment, pvFiles map[string]string, lv string, content []byte) {
	t.Helper()
	for _, s := range segs {
		if s.lv != lv {
			continue
		}
		from := s.le * s.extentSize
		if from >= int64(len(content)) {
			continue
		}
		chunk := content[from:min(int64(len(content)), from+s.count*s.extentSize)]
		f, err := os.OpenFile(pvFiles[s.pvFile], os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(chunk, s.peStart+s.pe*s.extentSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

func lvBytes(segs []lvmSegment, lv string) int64 {
	var n int64
	for _, s := range segs {
		if s.lv == lv {
			n += s.count * s.extentSize
		}
	}
	return n
}

func TestConvertLVM(t *testing.T) {
	tartest.Need(t, "mkfs.ext4", "mkswap", "sfdisk", "qemu-img", "tar")
	work := t.TempDir()
	src := filepath.Join(work, "src")
	buildTree(t, src, 300)
	want := tartest.GNUTar(t, src, filepath.Join(work, "gnu.tar"))
	boot := filepath.Join(work, "boot.img")
	write(t, filepath.Join(work, "bootsrc", "vmlinuz"), []byte("kernel"), 0o644)
	tartest.MkfsExt4(t, filepath.Join(work, "bootsrc"), boot, 8<<20)

	// rootfsImage makes an ext4 image of the tree exactly as large as the LV.
	rootfsImage := func(dir string, size int64) []byte {
		img := filepath.Join(dir, "root.img")
		tartest.MkfsExt4(t, src, img, size, "-b", "4096")
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	swapImage := func(dir string, size int64) []byte {
		img := filepath.Join(dir, "swap.img")
		f, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		tartest.Run(t, "mkswap", img)
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("debian-vg", func(t *testing.T) {
		// Debian's installer layout: /boot, then a PV with VG <host>-vg, LVs root and swap_1;
		// root is in two segments with swap_1's extents between them.
		dir := t.TempDir()
		segs := readLVMLayout(t, "debian")
		pv := lvmPVFile(t, dir, "debian.pv")
		files := map[string]string{"debian.pv": pv}
		fillLV(t, segs, files, "root", rootfsImage(dir, lvBytes(segs, "root")))
		fillLV(t, segs, files, "swap_1", swapImage(dir, lvBytes(segs, "swap_1")))
		layouts := map[string]string{
			"mbr":   tartest.WrapDisk(t, mkdir(t, dir, "mbr"), tartest.Layout{Label: "dos", Parts: []tartest.Part{{Image: boot, Type: "83"}, {Image: pv, Type: "8e"}}}),
			"gpt":   tartest.WrapDisk(t, mkdir(t, dir, "gpt"), tartest.Layout{Label: "gpt", Parts: []tartest.Part{{Size: 1 << 20, Type: "21686148-6449-6E6F-744E-656564454649"}, {Image: boot, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}, {Image: pv, Type: "E6D6D379-F507-44C2-A23C-238F2A3DF928"}}}),
			"whole": pv, // a PV on the whole disk, no partition table
		}
		for lname, raw := range layouts {
			for fname, args := range map[string][]string{"raw": nil, "zlib": {"-c", "-O", "qcow2"}} {
				t.Run(lname+"-"+fname, func(t *testing.T) {
					img := raw
					if args != nil {
						img = filepath.Join(dir, lname+"-"+fname+".qcow2")
						tartest.QemuConvert(t, raw, img, args...)
					}
					got, res := convertFile(t, img, WithoutAdaptation())
					for _, d := range tartest.Compare(want, got, skipMkfsArtifacts) {
						t.Error(d)
					}
					if res.RootLV != "debian-vg/root" || res.Filesystem != "ext4" || res.OS.OSID != "debian" {
						t.Errorf("root %q (%s, %s), partition %d: %s", res.RootLV, res.Filesystem, res.OS.OSID, res.RootPartition, res.RootReason)
					}
					wantPart := map[string]int{"mbr": 2, "gpt": 3, "whole": 0}[lname]
					if res.RootPartition != wantPart {
						t.Errorf("root partition %d, want %d", res.RootPartition, wantPart)
					}
					var swapNote string
					for _, p := range res.Partitions {
						if p.LV == "debian-vg/swap_1" {
							swapNote = p.Note
						}
					}
					if !strings.Contains(swapNote, "swap") || strings.HasPrefix(swapNote, "root") {
						t.Errorf("swap_1 row: %q", swapNote)
					}
				})
			}
		}
	})

	t.Run("spanning-vg", func(t *testing.T) {
		// VG rootvg over two partitions: LV root starts on the first PV, ends on the second.
		dir := t.TempDir()
		segs := readLVMLayout(t, "span")
		pv1, pv2 := lvmPVFile(t, dir, "span1.pv"), lvmPVFile(t, dir, "span2.pv")
		fillLV(t, segs, map[string]string{"span1.pv": pv1, "span2.pv": pv2}, "root", rootfsImage(dir, lvBytes(segs, "root")))
		both := tartest.WrapDisk(t, mkdir(t, dir, "both"), tartest.Layout{Label: "dos", Parts: []tartest.Part{{Image: boot, Type: "83"}, {Image: pv1, Type: "8e"}, {Image: pv2, Type: "8e"}}})
		got, res := convertFile(t, both, WithoutAdaptation())
		for _, d := range tartest.Compare(want, got, skipMkfsArtifacts) {
			t.Error(d)
		}
		if res.RootLV != "rootvg/root" || res.RootPartition != 2 {
			t.Errorf("root %q on partition %d", res.RootLV, res.RootPartition)
		}

		// Only the first PV on the disk: the error names the missing PV.
		one := tartest.WrapDisk(t, mkdir(t, dir, "one"), tartest.Layout{Label: "dos", Parts: []tartest.Part{{Image: boot, Type: "83"}, {Image: pv1, Type: "8e"}}})
		f, err := os.Open(one)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		st, _ := f.Stat()
		_, err = Convert(t.Context(), f, st.Size(), io.Discard)
		if !errors.Is(err, ErrNoRootFilesystem) || !errors.Is(err, ErrUnsupportedImage) || !strings.Contains(fmt.Sprint(err), "rootvg/root needs PV") {
			t.Errorf("VG with a PV missing: %v", err)
		}
	})
}

// lvmCRC is LVM's checksum: reflected CRC-32 without pre/post inversion, seed 0xf597a6cf.
func lvmCRC(b []byte) uint32 { return ^crc32.Update(^uint32(0xf597a6cf), crc32.IEEETable, b) }

// rewriteLVMText edits the committed metadata text of every metadata area of the PV in b (label
// in sector 1, as pvcreate writes it) and fixes the checksums, the way a tool that writes
// hostile metadata would. The new text must fit where the old one was without wrapping.
func rewriteLVMText(t *testing.T, b []byte, edit func(string) string) {
	t.Helper()
	le := binary.LittleEndian
	lab := b[512:1024]
	if string(lab[:8]) != "LABELONE" {
		t.Fatal("no label in sector 1")
	}
	h := lab[le.Uint32(lab[20:]):]
	rest := h[40:]
	for le.Uint64(rest) != 0 { // data areas
		rest = rest[16:]
	}
	rest = rest[16:]
	n := 0
	for ; le.Uint64(rest) != 0; rest = rest[16:] {
		mda, mdaSize := le.Uint64(rest), le.Uint64(rest[8:])
		m := b[mda : mda+mdaSize]
		off, size := le.Uint64(m[40:]), le.Uint64(m[48:])
		text := edit(string(m[off : off+size]))
		if off+uint64(len(text)) > mdaSize {
			t.Fatalf("edited text does not fit")
		}
		copy(m[off:], text)
		le.PutUint64(m[48:], uint64(len(text)))
		le.PutUint32(m[56:], lvmCRC([]byte(text)))
		le.PutUint32(m[0:], lvmCRC(m[4:512]))
		n++
	}
	if n == 0 {
		t.Fatal("no metadata area")
	}
}

func TestConvertLVMRefused(t *testing.T) {
	segs := readLVMLayout(t, "debian")
	// The debian PV with an ext4 root made of the source tree, as a whole-disk PV.
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "etc/os-release"), []byte("ID=debian\n"), 0o644)
	write(t, filepath.Join(src, "sbin/init"), []byte("#!/bin/sh\n"), 0o755)
	img := filepath.Join(dir, "root.img")
	tartest.MkfsExt4(t, src, img, lvBytes(segs, "root"))
	root, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	pvPath := lvmPVFile(t, dir, "debian.pv")
	fillLV(t, segs, map[string]string{"debian.pv": pvPath}, "root", root)
	pv, err := os.ReadFile(pvPath)
	if err != nil {
		t.Fatal(err)
	}
	convert := func(b []byte) (*Result, error) {
		return Convert(t.Context(), bytes.NewReader(b), int64(len(b)), io.Discard)
	}
	if res, err := convert(pv); err != nil || res.RootLV != "debian-vg/root" {
		t.Fatalf("unedited PV: %v", err)
	}
	// root's first segment as a thin volume: refused, and the error names the LV.
	thin := bytes.Clone(pv)
	rewriteLVMText(t, thin, func(s string) string {
		return strings.Replace(s, "type = \"striped\"", "type = \"thin\"", 1)
	})
	_, err = convert(thin)
	t.Logf("thin root LV: %v", err)
	var ufe *UnsupportedFilesystemError
	if !errors.As(err, &ufe) || ufe.Volume != "debian-vg/root" || !strings.Contains(err.Error(), `"thin"`) {
		t.Errorf("thin root LV: %v", err)
	}
	// A segment pointing past the PV's extents: the image is invalid.
	past := bytes.Clone(pv)
	rewriteLVMText(t, past, func(s string) string {
		return strings.Replace(s, "\"pv0\", 12", "\"pv0\", 62", 1)
	})
	if _, err := convert(past); !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), "past its") {
		t.Errorf("segment past the PV: %v", err)
	}
	// The label's checksum broken: invalid, not "no root".
	badLabel := bytes.Clone(pv)
	badLabel[512+40] ^= 1
	if _, err := convert(badLabel); !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), "label checksum") {
		t.Errorf("bad label checksum: %v", err)
	}
}
