// Package snapshot turns a VM-like container's root filesystem (the tar of `docker export`)
// into a QCOW2 disk for Glance that boots both as a container here and as a VM on KVM
// (nova's snapshot_instance data path).
//
// # Why the original image is read again
//
// The container was made from a Glance image by images.Convert, whose adaptation
// (images/rootfs.Rules) empties /boot, /lib/modules and /usr/lib/modules, comments out the
// block-device lines of /etc/fstab, masks units (serial-getty@ttyS0, networking, fsck...) and
// adds drop-ins (cloud-init `network: {config: disabled}`, an sshd host-key hook). A plain
// export therefore has no kernel, no boot loader, no root mount, no serial login and no
// network configuration. Two ways to get them back were weighed:
//
//   - record the removed parts at conversion time: every cached image would carry ~440 MB
//     (61 % of the Debian test image) that containers never use, in a second store that must
//     be kept consistent with Docker's and garbage-collected with it;
//   - read them again from the original Glance image at snapshot time (chosen): the original is
//     authoritative, costs nothing while instances run, and the project already reads qcow2 →
//     partition table → ext4 without root (images.Convert). The price is re-reading the
//     original once per snapshot (its download is the caller's: any io.ReaderAt).
//
// # What the snapshot disk is
//
// With an original, the snapshot is the original disk with its root filesystem replaced, like
// the copy nova's libvirt driver uploads: every byte outside the root partition is copied
// unchanged (MBR boot code and the GRUB core in the MBR gap, BIOS-boot, EFI and separate /boot
// partitions, the partition table), and the new ext4 root filesystem gets the original's UUID,
// label, block size, inode size and feature set. So the original grub.cfg (`search
// --fs-uuid`), kernel command line (root=UUID=), initramfs and fstab find it unchanged and the
// original kernel can mount it; no boot loader is generated and no guest binary is ever run
// on the host. Into the tree go the original's /boot, /lib/modules and /usr/lib/modules
// (merged: the guest's own files win), the original /etc/hosts, /etc/hostname and
// /etc/resolv.conf (Docker bind-mounts its own over them, so the export shows placeholders),
// then the adaptation is undone where the guest left it as the adaptation wrote it: fstab
// lines re-enabled (or the original fstab if none mounts /), masks and added drop-ins removed
// unless the original had them. Host keys and machine-id stay as the container has them.
//
// If the tree does not fit the original root partition, the partition is grown when it is the
// last one (sfdisk -N; GPT's backup header moved with --relocate); otherwise, and without an
// original, a fresh one-partition MBR disk is written (LayoutFresh): it converts back into a
// container but has no boot loader (Result.VMBootable false, BootNote says why).
//
// # Pipeline and pause
//
// Stage streams the tar into a staging tree under Options.WorkDir as root (owners, modes incl.
// setuid, nanosecond times, xattrs incl. security.capability, hard links, devices; absolute
// names, ".." and writes through symlinks refused), so the caller can close the export — the
// driver keeps the instance paused until then — as soon as Stage returns. Build then merges
// the original, sizes the filesystem from the tree (NeedFor; at least RootGB for the disk),
// writes a sparse raw disk, runs `mkfs.ext4 -d` straight into it at the root offset, and
// `qemu-img convert -c -O qcow2`. External commands go through Options.Runner. Every temporary
// file lives under one directory in WorkDir, removed on every error path; the qcow2 stays
// until Result.Cleanup.
//
// docker export keeps only the security.capability xattr: POSIX ACLs and other xattrs the
// guest had are not in the snapshot.
//
// Example (the agent's snapshot_instance):
//
//	rc, _ := drv.Snapshot(ctx, instanceUUID)         // pauses the instance
//	st, err := snapshot.Stage(ctx, rc, opts)         // opts.Original = the base image
//	rc.Close()                                      // resumes it
//	res, err := st.Build(ctx)
//	defer res.Cleanup()
//	f, _ := res.Open()
//	err = glance.UploadImage(ctx, imageID, f)        // disk_format qcow2, container_format bare
package snapshot
