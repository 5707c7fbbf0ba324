package disk

import (
	"bytes"
	"encoding/binary"
	"io"
)

// FSType names what a partition's first bytes say it contains.
type FSType string

// Filesystem and volume signatures Probe recognises. Only the ext family is readable by this
// project today; the others are named so the caller can refuse them clearly.
const (
	FSExt2     FSType = "ext2"
	FSExt3     FSType = "ext3"
	FSExt4     FSType = "ext4"
	FSXFS      FSType = "xfs"
	FSBtrfs    FSType = "btrfs"
	FSLVM2     FSType = "LVM2_member"
	FSSwap     FSType = "swap"
	FSLUKS     FSType = "crypto_LUKS"
	FSVFAT     FSType = "vfat"
	FSISO9660  FSType = "iso9660"
	FSSquashFS FSType = "squashfs"
	FSRAID     FSType = "linux_raid_member"
	FSUnknown  FSType = "unknown"
)

// IsExt reports whether t is readable by images/ext4.
func (t FSType) IsExt() bool { return t == FSExt2 || t == FSExt3 || t == FSExt4 }

// Probe names the filesystem or volume signature at the start of r (size bytes long).
func Probe(r io.ReaderAt, size int64) (FSType, error) {
	at := func(off int64, n int) []byte {
		if off < 0 || off+int64(n) > size {
			return nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil
		}
		return b
	}
	if sb := at(1024, 1024); sb != nil && binary.LittleEndian.Uint16(sb[56:]) == 0xEF53 {
		compat, incompat := binary.LittleEndian.Uint32(sb[92:]), binary.LittleEndian.Uint32(sb[96:])
		switch {
		case incompat&^0x3 != 0: // anything beyond filetype/compression: extents, 64bit, flex_bg…
			return FSExt4, nil
		case compat&0x4 != 0: // has_journal
			return FSExt3, nil
		default:
			return FSExt2, nil
		}
	}
	if b := at(0, 8); b != nil {
		switch {
		case bytes.Equal(b[:4], []byte("XFSB")):
			return FSXFS, nil
		case bytes.Equal(b[:6], []byte("LUKS\xba\xbe")):
			return FSLUKS, nil
		case bytes.Equal(b[:4], []byte("hsqs")):
			return FSSquashFS, nil
		}
	}
	for sec := int64(0); sec < 4; sec++ {
		if b := at(sec*512, 32); b != nil && string(b[:8]) == "LABELONE" && string(b[24:32]) == "LVM2 001" {
			return FSLVM2, nil
		}
	}
	if b := at(0x10040, 8); b != nil && string(b) == "_BHRfS_M" {
		return FSBtrfs, nil
	}
	if b := at(4096, 4); b != nil && binary.LittleEndian.Uint32(b) == 0xa92b4efc {
		return FSRAID, nil
	}
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		if b := at(page-10, 10); b != nil && (string(b) == "SWAPSPACE2" || string(b) == "SWAP-SPACE") {
			return FSSwap, nil
		}
	}
	if b := at(0x8001, 5); b != nil && string(b) == "CD001" {
		return FSISO9660, nil
	}
	if b := at(0, 512); b != nil && binary.LittleEndian.Uint16(b[510:]) == mbrSignature &&
		(bytes.HasPrefix(b[82:], []byte("FAT")) || bytes.HasPrefix(b[54:], []byte("FAT")) || string(b[3:11]) == "EXFAT   ") {
		return FSVFAT, nil
	}
	return FSUnknown, nil
}
