// Package lvm reads LVM2 volume groups from disk images in pure Go: no device-mapper, no
// activation, no root. The converter uses it to find root filesystems inside logical volumes
// (RHEL's rootvg/root, Debian's <host>-vg/root) of a QCOW2 image.
//
// ReadPV parses one physical volume from an io.ReaderAt (a partition, or a whole disk): the
// label (LABELONE in one of the first four sectors, CRC checked), the PV header (UUID, data and
// metadata areas), each metadata area header and the committed metadata text in its circular
// buffer (CRC checked), and the text itself — the nested `key = value` / `section { }`
// language — into a volume group description. Assemble joins the PVs of a disk into volume
// groups, taking the newest metadata (highest seqno) any of them holds, and matches the VG's
// physical volumes to the PVs found by UUID. Open does both for a single PV.
//
// An LV made of linear segments (type "striped" with one stripe) on PVs that are present is
// readable: LV.Open maps logical extents to PV extents (pe_start and extent_size are in 512-byte
// sectors in the metadata). Thin pools and thin volumes, snapshots, mirrors, RAID, cache, VDO,
// multi-stripe and other segment types are described but refused by LV.Open with
// ErrUnsupported saying which; an LV on a PV that is not on the disk fails with ErrMissingPV
// naming the PV.
//
// Everything read is untrusted: the metadata text is bounded (1 MiB, nesting depth, node
// count), and extent counts, segment ranges past a PV's end, gaps and overlaps between segments
// or between LVs on one PV end in ErrCorrupt with context, never a panic.
//
// Example:
//
//	vg, err := lvm.Open(partition, size)
//	for _, lv := range vg.LVs() {
//		r, err := lv.Open()
//		if err != nil { continue } // thin, snapshot, …: err says why
//		fs, _ := disk.Probe(r, lv.Size)
//		fmt.Println(lv.FullName(), lv.Size, fs)
//	}
package lvm
