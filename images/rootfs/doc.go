// Package rootfs streams a VM's root filesystem into a tar layer for `docker import`, adapting
// it for a container in the same pass.
//
// The filesystem is walked by inode (one directory block in memory at a time per level), every
// entry is written with its full metadata (numeric owners, setuid/sticky bits, nanosecond mtimes,
// xattrs incl. security.capability and POSIX ACLs in the binary form Docker keeps, device
// numbers, hard links as tar links), and the adaptation rules of the image's distro family
// (Rules) are applied as entries go by: paths dropped, files emptied or rewritten, and units
// masked by entries appended at the end of the stream. The walk, the reading of file contents
// (several files at once when the FS is a ParallelFS, within a fixed read-ahead window), the
// tar writer and a bounded write-behind buffer run concurrently, so disk latency,
// decompression and the consumer (docker import) overlap while memory stays bounded.
//
// Example:
//
//	facts, _ := rootfs.Inspect(fsys)
//	plan := rootfs.NewPlan(facts)
//	stats, err := rootfs.Write(ctx, fsys, w, plan)
package rootfs
