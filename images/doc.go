// Package images turns Glance QCOW2 images into VM-like container images, streamed and unmounted.
//
// Convert is the whole pipeline in one pass, without root, loop devices, nbd or a temporary raw
// copy: the disk image (qcow2 via images/qcow2, or raw) → its partition table (images/disk: MBR
// with logical partitions, GPT, or none) → the root filesystem, chosen by content (/sbin/init,
// os-release) before GPT type and size, never by index → an inode walk of that ext2/3/4
// filesystem (images/ext4) → a tar layer with full metadata, adapted for a container by the
// rules of the image's distro family (images/rootfs) in the same stream.
//
// XFS, LVM, btrfs, LUKS and md-raid roots are recognised and refused with an
// *UnsupportedFilesystemError (errors.Is ErrUnsupportedFilesystem) naming them. Malformed or
// hostile input ends with ErrInvalidImage (wrapping the sub-package's sentinel), within bounded
// time and memory.
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
