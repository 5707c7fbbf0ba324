package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Xattr is one extended attribute, with its full name ("security.capability") and its value in
// the form getxattr(2) returns (POSIX ACLs converted from ext4's on-disk form).
type Xattr struct {
	Name  string
	Value []byte
}

const (
	xattrMagic    = 0xEA020000
	xattrMaxValue = 64 << 10 // XATTR_SIZE_MAX
)

var xattrPrefix = map[uint8]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
	7: "system.",
	8: "system.richacl",
}

// Xattrs returns the inode's extended attributes: in-inode ones first, then the xattr block's,
// as listxattr(2) orders them. system.data (inline-data storage) is internal and left out.
func (f *FS) Xattrs(in *Inode) ([]Xattr, error) {
	xs, err := f.rawXattrs(in, false)
	if err != nil {
		return nil, err
	}
	for i := range xs {
		if xs[i].Name == "system.posix_acl_access" || xs[i].Name == "system.posix_acl_default" {
			v, err := aclToVFS(xs[i].Value)
			if err != nil {
				return nil, fmt.Errorf("inode %d %s: %w", in.Ino, xs[i].Name, err)
			}
			xs[i].Value = v
		}
	}
	return xs, nil
}

func (f *FS) rawXattrs(in *Inode, inlineOnly bool) ([]Xattr, error) {
	var out []Xattr
	le := binary.LittleEndian
	if f.inodeSize > 128 {
		extra := int64(le.Uint16(in.raw[128:]))
		region := in.raw[128+extra:]
		if len(region) >= 4 && le.Uint32(region) == xattrMagic {
			var err error
			if out, err = f.parseXattrs(in, region[4:], region[4:], out, inlineOnly); err != nil {
				return nil, fmt.Errorf("inode %d in-inode xattrs: %w", in.Ino, err)
			}
		}
	}
	if in.fileACL != 0 && !inlineOnly {
		blk := make([]byte, f.blockSize)
		if err := f.readBlock(in.fileACL, blk); err != nil {
			return nil, fmt.Errorf("inode %d xattr block: %w", in.Ino, err)
		}
		if le.Uint32(blk) != xattrMagic || le.Uint32(blk[8:]) != 1 {
			return nil, fmt.Errorf("inode %d xattr block %d: bad header: %w", in.Ino, in.fileACL, ErrCorrupt)
		}
		var err error
		if out, err = f.parseXattrs(in, blk[32:], blk, out, false); err != nil {
			return nil, fmt.Errorf("inode %d xattr block %d: %w", in.Ino, in.fileACL, err)
		}
	}
	return out, nil
}

// parseXattrs decodes the entry table in ents; value offsets are relative to vals.
func (f *FS) parseXattrs(in *Inode, ents, vals []byte, out []Xattr, inlineOnly bool) ([]Xattr, error) {
	le := binary.LittleEndian
	for off := 0; off+4 <= len(ents) && le.Uint32(ents[off:]) != 0; {
		if off+16 > len(ents) {
			return nil, fmt.Errorf("truncated entry: %w", ErrCorrupt)
		}
		e := ents[off:]
		nameLen, idx := int(e[0]), e[1]
		voff, vinum, vsize := int(le.Uint16(e[2:])), le.Uint32(e[4:]), int64(le.Uint32(e[8:]))
		if off+16+nameLen > len(ents) {
			return nil, fmt.Errorf("entry name past the table: %w", ErrCorrupt)
		}
		suffix := string(e[16 : 16+nameLen])
		off += (16 + nameLen + 3) &^ 3
		prefix, known := xattrPrefix[idx]
		if !known {
			return nil, fmt.Errorf("unknown xattr name index %d: %w", idx, ErrUnsupported)
		}
		name := prefix + suffix
		if inlineOnly && name != "system.data" {
			continue
		}
		if !inlineOnly && name == "system.data" {
			continue
		}
		if vsize > xattrMaxValue {
			return nil, fmt.Errorf("xattr %s value of %d bytes: %w", name, vsize, ErrCorrupt)
		}
		var val []byte
		if vinum != 0 {
			// ea_inode: the value is the content of another inode.
			vin, err := f.Inode(vinum)
			if err != nil {
				return nil, fmt.Errorf("xattr %s value inode: %w", name, err)
			}
			if vin.Flags&flagEAInode == 0 || int64(vin.Size) != vsize {
				return nil, fmt.Errorf("xattr %s value inode %d: %w", name, vinum, ErrCorrupt)
			}
			r, err := f.Open(vin)
			if err != nil {
				return nil, err
			}
			val = make([]byte, vsize)
			if _, err := io.ReadFull(r, val); err != nil {
				return nil, fmt.Errorf("xattr %s value inode %d: %w", name, vinum, err)
			}
		} else {
			if int64(voff)+vsize > int64(len(vals)) {
				return nil, fmt.Errorf("xattr %s value (%d+%d) outside its table: %w", name, voff, vsize, ErrCorrupt)
			}
			val = append([]byte(nil), vals[voff:int64(voff)+vsize]...)
		}
		out = append(out, Xattr{Name: name, Value: val})
	}
	return out, nil
}

// POSIX ACL tags (linux/posix_acl.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclToVFS converts ext4's on-disk ACL (version 1; 4-byte entries for the *_OBJ, MASK and OTHER
// tags, 8-byte ones with an id for USER and GROUP) into the uniform 8-byte-entry version 2 form
// that getxattr returns and that GNU tar, Docker and the kernel's setxattr expect.
func aclToVFS(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(b) < 4 || le.Uint32(b) != 1 {
		return nil, fmt.Errorf("ACL header: %w", ErrCorrupt)
	}
	out := make([]byte, 4, 4+2*len(b))
	le.PutUint32(out, 2)
	for off := 4; off < len(b); {
		if off+4 > len(b) {
			return nil, fmt.Errorf("truncated ACL entry: %w", ErrCorrupt)
		}
		tag, perm := le.Uint16(b[off:]), le.Uint16(b[off+2:])
		id := uint32(0xFFFFFFFF) // ACL_UNDEFINED_ID
		switch tag {
		case aclUser, aclGroup:
			if off+8 > len(b) {
				return nil, fmt.Errorf("truncated ACL entry: %w", ErrCorrupt)
			}
			id = le.Uint32(b[off+4:])
			off += 8
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			off += 4
		default:
			return nil, fmt.Errorf("ACL tag %#x: %w", tag, ErrCorrupt)
		}
		var e [8]byte
		le.PutUint16(e[0:], tag)
		le.PutUint16(e[2:], perm)
		le.PutUint32(e[4:], id)
		out = append(out, e[:]...)
	}
	return out, nil
}
