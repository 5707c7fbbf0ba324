// Package xfs reads XFS filesystems from an io.ReaderAt, inode by inode, with everything a
// faithful tar layer needs: owners, full mode bits, nanosecond timestamps (bigtime included),
// hard-link counts, device numbers, short and remote symlinks, and extended attributes in the
// user, trusted and security namespaces (POSIX ACLs, which XFS keeps as trusted.SGI_ACL_FILE and
// trusted.SGI_ACL_DEFAULT in its own big-endian form, are returned as system.posix_acl_access and
// system.posix_acl_default in the getxattr form).
//
// It was written from the XFS on-disk format documentation. Version 5 superblocks (metadata
// checksums, what mkfs.xfs makes today; sparse inodes, bigtime and large extent counts included)
// and version 4 ones with version-2 directories are read (file-range exchange and parent pointers
// too: the latter are left out of Xattrs); an unknown incompatible feature, a
// realtime subvolume or a filesystem marked as needing repair is refused with ErrUnsupported.
// Checksums are not verified: headers (magic, owner inode, byte ranges) are, which is what keeps
// a damaged image from being misread.
//
// File content is streamed from the extent list or the extent B+tree: holes and unwritten
// (fallocated) extents read as zeros. Directories in every form (short-form in the inode, block,
// leaf, node) are enumerated by reading their data blocks one at a time; the hash index is not
// needed for that.
//
// The input is untrusted: every block number is checked against its allocation group and the
// filesystem size, which is checked against the partition size; extents must be strictly ordered;
// B+tree and attribute trees may not revisit a block nor exceed their depth; names containing '/'
// are refused. The log is not replayed: an image taken from a running system shows what had
// reached the metadata in place.
//
// Example:
//
//	fsys, err := xfs.Open(io.NewSectionReader(disk, p.Start, p.Size), p.Size)
//	root, _ := fsys.Inode(fsys.RootIno())
//	err = fsys.ReadDir(root, func(name string, ino uint64) error { ... })
package xfs
