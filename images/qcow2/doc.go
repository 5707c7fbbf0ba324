// Package qcow2 reads QCOW2 disk images (versions 2 and 3) as a random-access byte stream of the
// virtual disk, without qemu, nbd or a temporary raw copy.
//
// It handles zlib and zstd compressed clusters, all-zero clusters and local backing files, and
// refuses what it cannot read faithfully (encryption, external data files, extended L2 entries)
// with ErrUnsupported. Every offset read from the image is checked against the file size before
// use, so a hostile image yields ErrCorrupt rather than a panic, an endless loop or unbounded
// memory: the L1 table is capped at 32 MiB (as qemu does), a compressed cluster never inflates
// beyond one cluster, and backing chains are limited in depth.
//
// Decompressed clusters and L2 tables are kept in small LRU caches, and a read spanning several
// compressed clusters inflates them concurrently, which is what makes `-c` images fast to stream.
//
// Example:
//
//	img, err := qcow2.Open(ctx, f, size)
//	if err != nil { ... }
//	n, err := img.ReadAt(buf, off) // bytes of the virtual disk
package qcow2
