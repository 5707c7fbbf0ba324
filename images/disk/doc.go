// Package disk finds the partitions of a virtual disk (MBR with extended/logical partitions, GPT,
// or a filesystem spanning the whole disk) and names the filesystem inside each one by its
// superblock magic, so the converter can pick the root filesystem by content rather than by
// partition index.
//
// Everything is read through io.ReaderAt from untrusted bytes: tables are bounded (at most 128
// logical partitions, a 1 MiB GPT entry array), EBR chains that loop are cut, and partitions
// extending beyond the disk are dropped with a warning.
//
// Example:
//
//	t, err := disk.ReadTable(img, img.Size())
//	for _, p := range t.Partitions {
//		fs, _ := disk.Probe(io.NewSectionReader(img, p.Start, p.Size), p.Size)
//		fmt.Println(p.Number, p.TypeName, fs)
//	}
package disk
