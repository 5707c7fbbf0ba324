package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// ErrCorrupt marks a partition table that cannot be trusted.
var ErrCorrupt = errors.New("disk: corrupt partition table")

// TableType names the partitioning scheme of a disk.
type TableType string

// The partitioning schemes ReadTable recognises.
const (
	TableMBR  TableType = "mbr"
	TableGPT  TableType = "gpt"
	TableNone TableType = "none" // a filesystem (or nothing) spans the whole disk
)

// Role is what a partition's type code says it is for; the root finder skips the non-data roles.
type Role string

// Roles derived from MBR type bytes and GPT type GUIDs.
const (
	RoleRoot     Role = "linux-root" // GPT "Linux root (x86-64/arm64/…)" (discoverable partitions spec)
	RoleLinux    Role = "linux"      // MBR 0x83, GPT Linux filesystem data
	RoleUsr      Role = "linux-usr"
	RoleBoot     Role = "boot" // GPT XBOOTLDR
	RoleEFI      Role = "efi"
	RoleBIOSBoot Role = "bios-boot"
	RoleSwap     Role = "swap"
	RoleLVM      Role = "lvm"
	RoleRAID     Role = "raid"
	RoleExtended Role = "extended"
	RoleOther    Role = "other"
)

// Partition is one entry of the table, in bytes from the start of the disk.
type Partition struct {
	Number   int    // as Linux numbers it: primaries 1-4, logicals from 5, GPT entries by index+1
	Start    int64  // byte offset
	Size     int64  // bytes
	Type     string // MBR "0x83", GPT type GUID in upper case
	Role     Role
	UUID     string // GPT unique partition GUID
	Name     string // GPT partition name
	Bootable bool   // MBR active flag
}

// Table is the partition layout of a disk.
type Table struct {
	Type       TableType
	SectorSize int
	Partitions []Partition
	Warnings   []string
}

const (
	maxLogical   = 128
	maxGPTBytes  = 1 << 20
	mbrSignature = 0xAA55
)

// ReadTable reads the partition table of a disk of size bytes.
func ReadTable(r io.ReaderAt, size int64) (*Table, error) {
	if size < 512 {
		return &Table{Type: TableNone, SectorSize: 512}, nil
	}
	var mbr [512]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil {
		return nil, fmt.Errorf("read sector 0: %w", err)
	}
	for _, ss := range []int64{512, 4096} {
		if hasGPTSignature(r, ss, size) && (protective(mbr[:]) || binary.LittleEndian.Uint16(mbr[510:]) != mbrSignature) {
			return readGPT(r, size, ss)
		}
	}
	if binary.LittleEndian.Uint16(mbr[510:]) != mbrSignature {
		return &Table{Type: TableNone, SectorSize: 512}, nil
	}
	t, err := readMBR(r, size, mbr[:])
	if err != nil {
		return nil, err
	}
	if len(t.Partitions) == 0 {
		// A boot sector signature without entries (e.g. a FAT or ext boot block): whole disk.
		return &Table{Type: TableNone, SectorSize: 512, Warnings: t.Warnings}, nil
	}
	return t, nil
}

func protective(mbr []byte) bool {
	for i := range 4 {
		if mbr[446+16*i+4] == 0xEE {
			return true
		}
	}
	return false
}

func hasGPTSignature(r io.ReaderAt, ss, size int64) bool {
	if size < 2*ss {
		return false
	}
	var sig [8]byte
	_, err := r.ReadAt(sig[:], ss)
	return err == nil && string(sig[:]) == "EFI PART"
}

func mbrRole(t byte) Role {
	switch t {
	case 0x83:
		return RoleLinux
	case 0x82:
		return RoleSwap
	case 0x8e:
		return RoleLVM
	case 0xfd:
		return RoleRAID
	case 0xef:
		return RoleEFI
	case 0x05, 0x0f, 0x85:
		return RoleExtended
	}
	return RoleOther
}

func readMBR(r io.ReaderAt, size int64, mbr []byte) (*Table, error) {
	t := &Table{Type: TableMBR, SectorSize: 512}
	le := binary.LittleEndian
	add := func(num int, e []byte, base int64) {
		start := (base + int64(le.Uint32(e[8:]))) * 512
		n := int64(le.Uint32(e[12:])) * 512
		if n == 0 {
			return
		}
		if start+n > size {
			t.Warnings = append(t.Warnings, fmt.Sprintf("partition %d (%d+%d bytes) extends past the %d-byte disk: ignored", num, start, n, size))
			return
		}
		t.Partitions = append(t.Partitions, Partition{Number: num, Start: start, Size: n,
			Type: fmt.Sprintf("0x%02x", e[4]), Role: mbrRole(e[4]), Bootable: e[0] == 0x80})
	}
	var extStart int64 = -1
	for i := range 4 {
		e := mbr[446+16*i : 446+16*i+16]
		if e[4] == 0 {
			continue
		}
		if mbrRole(e[4]) == RoleExtended {
			if extStart >= 0 {
				t.Warnings = append(t.Warnings, "more than one extended partition: only the first is read")
				continue
			}
			extStart = int64(le.Uint32(e[8:]))
			continue
		}
		add(i+1, e, 0)
	}
	if extStart < 0 {
		return t, nil
	}
	// Logical partitions: a chain of EBRs, each describing one logical partition (relative to
	// itself) and the next EBR (relative to the extended partition).
	seen := map[int64]bool{}
	ebr := extStart
	var sec [512]byte
	for num := 5; ; num++ {
		if num-4 > maxLogical {
			return nil, fmt.Errorf("more than %d logical partitions: %w", maxLogical, ErrCorrupt)
		}
		if seen[ebr] {
			return nil, fmt.Errorf("EBR chain loops at sector %d: %w", ebr, ErrCorrupt)
		}
		seen[ebr] = true
		if ebr*512+512 > size {
			return nil, fmt.Errorf("EBR at sector %d beyond the disk: %w", ebr, ErrCorrupt)
		}
		if _, err := r.ReadAt(sec[:], ebr*512); err != nil {
			return nil, fmt.Errorf("read EBR at sector %d: %w", ebr, err)
		}
		if le.Uint16(sec[510:]) != mbrSignature {
			return nil, fmt.Errorf("EBR at sector %d has no boot signature: %w", ebr, ErrCorrupt)
		}
		if sec[446+4] != 0 {
			add(num, sec[446:462], ebr)
		}
		next := sec[462:478]
		if next[4] == 0 || mbrRole(next[4]) != RoleExtended {
			return t, nil
		}
		ebr = extStart + int64(le.Uint32(next[8:]))
	}
}

// Well-known GPT partition type GUIDs (UEFI spec and the Discoverable Partitions Specification).
var gptRoles = map[string]Role{
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": RoleRoot, // Linux root x86-64
	"44479540-F297-41B2-9AF7-D131D5F0458A": RoleRoot, // Linux root x86
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": RoleRoot, // Linux root arm64
	"69DAD710-2CE4-4E3C-B16C-21A1D49ABED3": RoleRoot, // Linux root arm32
	"72EC70A6-CF74-40E6-BD49-4BDA08E8F224": RoleRoot, // Linux root riscv64
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": RoleLinux,
	"8484680C-9521-48C6-9C11-B0720656F69E": RoleUsr, // Linux /usr x86-64
	"B0E01050-EE5F-4390-949A-9101B17104E9": RoleUsr, // Linux /usr arm64
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": RoleBoot,
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": RoleEFI,
	"21686148-6449-6E6F-744E-656564454649": RoleBIOSBoot,
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": RoleSwap,
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": RoleLVM,
	"A19D880F-05FC-4D3B-A006-743F0F84911E": RoleRAID,
}

func guid(b []byte) string {
	le := binary.LittleEndian
	return strings.ToUpper(fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16]))
}

func readGPT(r io.ReaderAt, size, ss int64) (*Table, error) {
	t := &Table{Type: TableGPT, SectorSize: int(ss)}
	hdr, err := gptHeader(r, ss, ss, size)
	if err != nil {
		backup := (size/ss - 1) * ss
		var err2 error
		if hdr, err2 = gptHeader(r, backup, ss, size); err2 != nil {
			return nil, fmt.Errorf("primary GPT header: %w; backup: %w", err, err2)
		}
		t.Warnings = append(t.Warnings, fmt.Sprintf("primary GPT header unusable (%v): used the backup", err))
	}
	le := binary.LittleEndian
	entLBA := int64(le.Uint64(hdr[72:]))
	count := int64(le.Uint32(hdr[80:]))
	esz := int64(le.Uint32(hdr[84:]))
	if esz < 128 || esz%8 != 0 || count*esz > maxGPTBytes || count < 0 {
		return nil, fmt.Errorf("GPT entry array %d×%d bytes: %w", count, esz, ErrCorrupt)
	}
	if entLBA <= 0 || entLBA > size/ss || entLBA*ss+count*esz > size {
		return nil, fmt.Errorf("GPT entry array at LBA %d beyond the disk: %w", entLBA, ErrCorrupt)
	}
	arr := make([]byte, count*esz)
	if _, err := r.ReadAt(arr, entLBA*ss); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(arr) != le.Uint32(hdr[88:]) {
		return nil, fmt.Errorf("GPT entry array checksum mismatch: %w", ErrCorrupt)
	}
	var zero [16]byte
	for i := range count {
		e := arr[i*esz : i*esz+esz]
		if bytes.Equal(e[:16], zero[:]) {
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		num := int(i + 1)
		if first <= 0 || last < first || last >= size/ss {
			t.Warnings = append(t.Warnings, fmt.Sprintf("partition %d (LBA %d-%d) outside the %d-byte disk: ignored", num, first, last, size))
			continue
		}
		u16 := make([]uint16, 0, 36)
		for k := 56; k+1 < 128; k += 2 {
			c := le.Uint16(e[k:])
			if c == 0 {
				break
			}
			u16 = append(u16, c)
		}
		typ := guid(e[0:16])
		role, ok := gptRoles[typ]
		if !ok {
			role = RoleOther
		}
		t.Partitions = append(t.Partitions, Partition{Number: num, Start: first * ss, Size: (last - first + 1) * ss,
			Type: typ, Role: role, UUID: guid(e[16:32]), Name: string(utf16.Decode(u16))})
	}
	return t, nil
}

func gptHeader(r io.ReaderAt, off, ss, size int64) ([]byte, error) {
	if off < ss || off+ss > size {
		return nil, fmt.Errorf("GPT header at %d outside the disk: %w", off, ErrCorrupt)
	}
	hdr := make([]byte, ss)
	if _, err := r.ReadAt(hdr, off); err != nil {
		return nil, fmt.Errorf("read GPT header at %d: %w", off, err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("no GPT signature at %d: %w", off, ErrCorrupt)
	}
	le := binary.LittleEndian
	hsz := int64(le.Uint32(hdr[12:]))
	if hsz < 92 || hsz > ss {
		return nil, fmt.Errorf("GPT header size %d: %w", hsz, ErrCorrupt)
	}
	want := le.Uint32(hdr[16:])
	c := make([]byte, hsz)
	copy(c, hdr[:hsz])
	clear(c[16:20])
	if crc32.ChecksumIEEE(c) != want {
		return nil, fmt.Errorf("GPT header checksum mismatch at %d: %w", off, ErrCorrupt)
	}
	return hdr, nil
}
