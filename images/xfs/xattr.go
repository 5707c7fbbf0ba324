package xfs

import (
	"encoding/binary"
	"fmt"
)

// Xattr is one extended attribute, with its full name ("security.capability") and its value in
// the form getxattr(2) returns (POSIX ACLs converted from XFS's on-disk form).
type Xattr struct {
	Name  string
	Value []byte
}

const (
	// Attribute entry flags: the namespace, and states a reader must not report.
	attrLocal      = 0x01
	attrRoot       = 0x02 // trusted.
	attrSecure     = 0x04 // security.
	attrParent     = 0x08 // parent pointer (filesystem-internal)
	attrIncomplete = 0x80 // half-written by an interrupted set

	attrLeafMagic  = 0xFBEE
	attr3LeafMagic = 0x3BEE
	daNodeMagic    = 0xFEBE
	da3NodeMagic   = 0x3EBE
	attrRmtMagic   = 0x5841524D // "XARM"

	daMaxDepth    = 5
	xattrMaxValue = 64 << 10 // XATTR_SIZE_MAX

	// The names XFS keeps POSIX ACLs under, in the trusted namespace.
	aclFileName    = "SGI_ACL_FILE"
	aclDefaultName = "SGI_ACL_DEFAULT"
)

// Xattrs returns the inode's extended attributes with getxattr(2) names: the user, trusted and
// security namespaces, and XFS's trusted.SGI_ACL_FILE / SGI_ACL_DEFAULT as
// system.posix_acl_access / system.posix_acl_default in the kernel's version 2 form.
func (f *FS) Xattrs(in *Inode) ([]Xattr, error) {
	if in.attrFork == nil {
		return nil, nil
	}
	var out []Xattr
	add := func(flags uint8, name, value []byte) error {
		x, err := vfsXattr(flags, name, value)
		if err != nil {
			return fmt.Errorf("inode %d: %w", in.Ino, err)
		}
		if x.Name != "" {
			out = append(out, x)
		}
		return nil
	}
	switch in.aformat {
	case fmtLocal:
		if err := f.shortAttrs(in, add); err != nil {
			return nil, err
		}
	case fmtExtents, fmtBtree:
		if in.aformat == fmtExtents && in.anextents == 0 {
			return nil, nil
		}
		m, err := f.forkMap(in, true, 1<<32)
		if err != nil {
			return nil, err
		}
		w := attrWalk{f: f, in: in, m: m, seen: map[uint64]bool{}, add: add}
		if err := w.block(0, daMaxDepth); err != nil {
			return nil, fmt.Errorf("inode %d attributes: %w", in.Ino, err)
		}
	default:
		return nil, fmt.Errorf("inode %d: attribute fork format %d: %w", in.Ino, in.aformat, ErrCorrupt)
	}
	return out, nil
}

// vfsXattr names an attribute as getxattr(2) does; a zero Xattr means "not user-visible".
func vfsXattr(flags uint8, name, value []byte) (Xattr, error) {
	if flags&(attrIncomplete|attrParent) != 0 {
		return Xattr{}, nil
	}
	if len(value) > xattrMaxValue {
		return Xattr{}, fmt.Errorf("attribute %q value of %d bytes: %w", name, len(value), ErrCorrupt)
	}
	v := append([]byte(nil), value...)
	switch flags & (attrRoot | attrSecure) {
	case 0:
		return Xattr{Name: "user." + string(name), Value: v}, nil
	case attrSecure:
		return Xattr{Name: "security." + string(name), Value: v}, nil
	case attrRoot:
		switch string(name) {
		case aclFileName, aclDefaultName:
			acl, err := aclToVFS(value)
			if err != nil {
				return Xattr{}, fmt.Errorf("attribute trusted.%s: %w", name, err)
			}
			n := "system.posix_acl_access"
			if string(name) == aclDefaultName {
				n = "system.posix_acl_default"
			}
			return Xattr{Name: n, Value: acl}, nil
		}
		return Xattr{Name: "trusted." + string(name), Value: v}, nil
	}
	return Xattr{}, fmt.Errorf("attribute %q in both the trusted and security namespaces: %w", name, ErrCorrupt)
}

// shortAttrs reads attributes kept in the inode: total size, count, then entries of name
// length, value length, flags, name and value.
func (f *FS) shortAttrs(in *Inode, add func(uint8, []byte, []byte) error) error {
	b := in.attrFork
	if len(b) < 4 {
		return fmt.Errorf("inode %d: short-form attributes of %d bytes: %w", in.Ino, len(b), ErrCorrupt)
	}
	total, count := int(be.Uint16(b)), int(b[2])
	if total > len(b) || total < 4 {
		return fmt.Errorf("inode %d: short-form attributes of %d bytes in a %d-byte fork: %w", in.Ino, total, len(b), ErrCorrupt)
	}
	b = b[:total]
	off := 4
	for k := 0; k < count; k++ {
		if off+3 > len(b) {
			return fmt.Errorf("inode %d: short-form attribute %d past the end: %w", in.Ino, k, ErrCorrupt)
		}
		nl, vl, flags := int(b[off]), int(b[off+1]), b[off+2]
		end := off + 3 + nl + vl
		if end > len(b) {
			return fmt.Errorf("inode %d: short-form attribute %d past the end: %w", in.Ino, k, ErrCorrupt)
		}
		if err := add(flags, b[off+3:off+3+nl], b[off+3+nl:end]); err != nil {
			return err
		}
		off = end
	}
	return nil
}

// attrWalk visits the attribute fork's dabtree from block 0: node blocks point to children by
// logical block number, leaf blocks hold the entries.
type attrWalk struct {
	f    *FS
	in   *Inode
	m    []extent
	seen map[uint64]bool
	add  func(uint8, []byte, []byte) error
}

func (w *attrWalk) block(lblk uint64, depth int) error {
	if w.seen[lblk] {
		return fmt.Errorf("block %d reached twice: %w", lblk, ErrCorrupt)
	}
	w.seen[lblk] = true
	b := make([]byte, w.f.blockSize)
	if err := w.f.readLogical(w.m, lblk, b); err != nil {
		return err
	}
	magic := be.Uint16(b[8:])
	if w.f.crc {
		if owner := be.Uint64(b[48:]); owner != w.in.Ino {
			return fmt.Errorf("block %d owned by inode %d: %w", lblk, owner, ErrCorrupt)
		}
	}
	switch {
	case magic == da3NodeMagic && w.f.crc, magic == daNodeMagic && !w.f.crc:
		hdr := 16
		if w.f.crc {
			hdr = 64
		}
		count := int(be.Uint16(b[hdr-4:]))
		if w.f.crc {
			count = int(be.Uint16(b[56:]))
		}
		if depth == 0 || count == 0 || hdr+8*count > len(b) {
			return fmt.Errorf("node block %d with %d entries at depth %d: %w", lblk, count, daMaxDepth-depth, ErrCorrupt)
		}
		for k := range count {
			if err := w.block(uint64(be.Uint32(b[hdr+8*k+4:])), depth-1); err != nil {
				return err
			}
		}
		return nil
	case magic == attr3LeafMagic && w.f.crc, magic == attrLeafMagic && !w.f.crc:
		return w.leaf(lblk, b)
	}
	return fmt.Errorf("block %d magic %#x: %w", lblk, magic, ErrCorrupt)
}

// leaf reads a leaf block: a header with the entry count, then 8-byte entries (hash, offset of
// the name record, flags); a local name record holds the value after the name, a remote one
// names the attribute-fork block where the value starts.
func (w *attrWalk) leaf(lblk uint64, b []byte) error {
	hdr, countOff := 32, 12
	if w.f.crc {
		hdr, countOff = 80, 56
	}
	count := int(be.Uint16(b[countOff:]))
	if hdr+8*count > len(b) {
		return fmt.Errorf("leaf block %d with %d entries: %w", lblk, count, ErrCorrupt)
	}
	for k := range count {
		e := b[hdr+8*k:]
		idx, flags := int(be.Uint16(e[4:])), e[6]
		if idx < hdr+8*count || idx >= len(b) {
			return fmt.Errorf("leaf block %d entry %d at %d: %w", lblk, k, idx, ErrCorrupt)
		}
		r := b[idx:]
		if flags&attrLocal != 0 {
			if len(r) < 3 {
				return fmt.Errorf("leaf block %d entry %d truncated: %w", lblk, k, ErrCorrupt)
			}
			vl, nl := int(be.Uint16(r)), int(r[2])
			if 3+nl+vl > len(r) {
				return fmt.Errorf("leaf block %d entry %d past the block: %w", lblk, k, ErrCorrupt)
			}
			if err := w.add(flags, r[3:3+nl], r[3+nl:3+nl+vl]); err != nil {
				return err
			}
			continue
		}
		if len(r) < 9 {
			return fmt.Errorf("leaf block %d entry %d truncated: %w", lblk, k, ErrCorrupt)
		}
		vblk, vl, nl := uint64(be.Uint32(r)), int64(be.Uint32(r[4:])), int(r[8])
		if 9+nl > len(r) {
			return fmt.Errorf("leaf block %d entry %d past the block: %w", lblk, k, ErrCorrupt)
		}
		name := r[9 : 9+nl]
		if flags&(attrIncomplete|attrParent) != 0 {
			continue
		}
		if vl > xattrMaxValue {
			return fmt.Errorf("attribute %q value of %d bytes: %w", name, vl, ErrCorrupt)
		}
		val, err := w.remote(vblk, int(vl))
		if err != nil {
			return fmt.Errorf("attribute %q remote value: %w", name, err)
		}
		if err := w.add(flags, name, val); err != nil {
			return err
		}
	}
	return nil
}

// remote reads a value of n bytes stored in attribute-fork blocks from lblk on; on v5 each block
// starts with a header naming the inode and the byte range it holds.
func (w *attrWalk) remote(lblk uint64, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	b := make([]byte, w.f.blockSize)
	hdr := 0
	if w.f.crc {
		hdr = 56
	}
	for k := lblk; len(out) < n; k++ {
		if k-lblk > uint64(n) {
			return nil, fmt.Errorf("value runs past its blocks: %w", ErrCorrupt)
		}
		if err := w.f.readLogical(w.m, k, b); err != nil {
			return nil, err
		}
		chunk := min(n-len(out), len(b)-hdr)
		if w.f.crc {
			off, cnt, owner := int(be.Uint32(b[4:])), int(be.Uint32(b[8:])), be.Uint64(b[32:])
			if be.Uint32(b) != attrRmtMagic || owner != w.in.Ino || off != len(out) || cnt != chunk {
				return nil, fmt.Errorf("value block %d header: %w", k, ErrCorrupt)
			}
		}
		out = append(out, b[hdr:hdr+chunk]...)
	}
	return out, nil
}

// POSIX ACL tags (linux/posix_acl.h); XFS uses the same numbers on disk.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclMaxEntries = 8191 // more than fits a 64 KiB value
)

// aclToVFS converts XFS's on-disk ACL (a big-endian entry count, then 12-byte entries of tag,
// id, permissions and padding) into the little-endian version 2 form getxattr returns and that
// GNU tar, Docker and the kernel's setxattr expect. Ids of entries other than USER and GROUP
// are ACL_UNDEFINED_ID there, whatever the disk says.
func aclToVFS(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("ACL of %d bytes: %w", len(b), ErrCorrupt)
	}
	count := int64(be.Uint32(b))
	if count > aclMaxEntries || int64(len(b)) != 4+12*count {
		return nil, fmt.Errorf("ACL of %d entries in %d bytes: %w", count, len(b), ErrCorrupt)
	}
	le := binary.LittleEndian
	out := make([]byte, 4, 4+8*count)
	le.PutUint32(out, 2)
	for k := range count {
		e := b[4+12*k:]
		tag, id, perm := be.Uint32(e), be.Uint32(e[4:]), be.Uint16(e[8:])
		switch tag {
		case aclUser, aclGroup:
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			id = 0xFFFFFFFF
		default:
			return nil, fmt.Errorf("ACL tag %#x: %w", tag, ErrCorrupt)
		}
		var v [8]byte
		le.PutUint16(v[0:], uint16(tag))
		le.PutUint16(v[2:], perm)
		le.PutUint32(v[4:], id)
		out = append(out, v[:]...)
	}
	return out, nil
}
