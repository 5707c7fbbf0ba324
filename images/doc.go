// Package images turns Glance QCOW2 images into VM-like container images, streamed and unmounted.
//
// Convert is the whole pipeline in one pass, without root, loop devices, nbd, device-mapper or a
// temporary raw copy: the disk image (qcow2 via images/qcow2, or raw) → its partition table
// (images/disk: MBR with logical partitions, GPT, or none) → the candidate filesystems: each
// partition, and each logical volume of the LVM volume groups whose physical volumes are on the
// disk (images/lvm reads the LVM2 labels and metadata and maps linear LVs' extents itself, no
// activation) → the root, chosen by content (/sbin/init, os-release) before GPT type and size,
// never by index or name → an inode walk of that filesystem (ext2/3/4 via images/ext4, XFS via
// images/xfs; a disk.FSType → reader table in convert.go) → a tar layer with full metadata,
// adapted for a container by the rules of the image's distro family (images/rootfs) in the same
// stream. Result.RootLV names the root's logical volume ("rootvg/root") when it is one.
// Both readers give the walker the same getxattr view: POSIX ACLs as system.posix_acl_* (XFS
// keeps them as trusted.SGI_ACL_*, which are not repeated), capabilities and other attributes as
// stored.
//
// btrfs, LUKS and md-raid roots, and LVM volumes that are not linear (thin, snapshot, RAID,
// mirror, cache, multi-stripe), are recognised and refused with an *UnsupportedFilesystemError
// (errors.Is ErrUnsupportedFilesystem) naming them; an LV on a physical volume that is not on the
// disk fails with ErrUnsupportedImage naming the PV. Malformed or hostile input ends with
// ErrInvalidImage (wrapping the sub-package's sentinel), within bounded time and memory.
//
// Example:
//
//	f, _ := os.Open("debian12.qcow2")
//	st, _ := f.Stat()
//	pr, pw := io.Pipe()
//	go func() { _, err := images.Convert(ctx, f, st.Size(), pw); pw.CloseWithError(err) }()
//	// docker import reads pr
//
// images/tartest compares such a layer with GNU tar of a source tree; images/cmd/nca-img2tar is
// the command-line front end used for measurements.
package images
