package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sfdisk(t *testing.T, size int64, script string) *os.File {
	t.Helper()
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("needs sfdisk (apt install fdisk)")
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestMBRWithLogicals(t *testing.T) {
	f := sfdisk(t, 64<<20, "label: dos\nstart=2048, size=8192, type=83, bootable\nstart=10240, size=8192, type=82\nstart=18432, type=5\nstart=20480, size=4096, type=83\nstart=26624, size=4096, type=8e\n")
	tab, err := ReadTable(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Type != TableMBR {
		t.Fatalf("type %s", tab.Type)
	}
	want := []Partition{
		{Number: 1, Start: 2048 * 512, Size: 8192 * 512, Type: "0x83", Role: RoleLinux, Bootable: true},
		{Number: 2, Start: 10240 * 512, Size: 8192 * 512, Type: "0x82", Role: RoleSwap},
		{Number: 5, Start: 20480 * 512, Size: 4096 * 512, Type: "0x83", Role: RoleLinux},
		{Number: 6, Start: 26624 * 512, Size: 4096 * 512, Type: "0x8e", Role: RoleLVM},
	}
	if len(tab.Partitions) != len(want) {
		t.Fatalf("partitions %+v", tab.Partitions)
	}
	for i, p := range tab.Partitions {
		if p != want[i] {
			t.Errorf("partition %d: got %+v want %+v", i, p, want[i])
		}
	}
}

func TestGPT(t *testing.T) {
	f := sfdisk(t, 64<<20, "label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, size=16384, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\nstart=20480, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n")
	tab, err := ReadTable(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Type != TableGPT || len(tab.Partitions) != 3 {
		t.Fatalf("table %+v", tab)
	}
	roles := []Role{RoleBIOSBoot, RoleLinux, RoleRoot}
	for i, p := range tab.Partitions {
		if p.Role != roles[i] || p.Number != i+1 {
			t.Errorf("partition %d: %+v", i, p)
		}
	}
	if p := tab.Partitions[2]; p.Name != "root" || p.Start != 20480*512 {
		t.Errorf("root partition %+v", p)
	}
	// Damage the primary header: the backup must be used.
	raw, _ := os.ReadFile(f.Name())
	raw[512+20] ^= 0xff
	tab, err = ReadTable(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || len(tab.Partitions) != 3 || len(tab.Warnings) == 0 {
		t.Fatalf("backup GPT: %v %+v", err, tab)
	}
}

func TestEBRLoopAndNoTable(t *testing.T) {
	d := make([]byte, 1<<20)
	le := binary.LittleEndian
	le.PutUint16(d[510:], mbrSignature)
	e := d[446:]
	e[4] = 0x05
	le.PutUint32(e[8:], 100)
	le.PutUint32(e[12:], 1000)
	// EBR at sector 100 whose "next" points back to itself.
	ebr := d[100*512:]
	le.PutUint16(ebr[510:], mbrSignature)
	ebr[462+4] = 0x05
	le.PutUint32(ebr[462+8:], 0)
	if _, err := ReadTable(bytes.NewReader(d), int64(len(d))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("EBR loop: %v", err)
	}
	tab, err := ReadTable(bytes.NewReader(make([]byte, 4096)), 4096)
	if err != nil || tab.Type != TableNone {
		t.Fatalf("blank disk: %v %+v", err, tab)
	}
}

func TestProbe(t *testing.T) {
	img := func(off int, sig string) []byte {
		b := make([]byte, 0x11000)
		copy(b[off:], sig)
		return b
	}
	ext := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint16(ext[1024+56:], 0xEF53)
	le.PutUint32(ext[1024+96:], 0x2c2) // extents|64bit|flex_bg|filetype
	cases := map[FSType][]byte{
		FSXFS:   img(0, "XFSB"),
		FSBtrfs: img(0x10040, "_BHRfS_M"),
		FSLVM2:  img(512, "LABELONE\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00LVM2 001"),
		FSSwap:  img(4086, "SWAPSPACE2"),
		FSLUKS:  img(0, "LUKS\xba\xbe"),
		FSExt4:  ext,
	}
	for want, b := range cases {
		got, err := Probe(bytes.NewReader(b), int64(len(b)))
		if err != nil || got != want {
			t.Errorf("Probe: got %s (%v), want %s", got, err, want)
		}
	}
}

func FuzzPartitionTable(f *testing.F) {
	mbr := make([]byte, 8192)
	binary.LittleEndian.PutUint16(mbr[510:], mbrSignature)
	mbr[446+4] = 0x83
	binary.LittleEndian.PutUint32(mbr[446+8:], 1)
	binary.LittleEndian.PutUint32(mbr[446+12:], 4)
	f.Add(mbr)
	gpt := make([]byte, 8192)
	copy(gpt, mbr)
	gpt[446+4] = 0xEE
	copy(gpt[512:], "EFI PART")
	f.Add(gpt)
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ReadTable(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > int64(len(b)) {
				t.Fatalf("partition outside the disk: %+v", p)
			}
			_, _ = Probe(bytes.NewReader(b[p.Start:p.Start+p.Size]), p.Size)
		}
	})
}
