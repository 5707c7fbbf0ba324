package images

// ParallelReads makes extFS a rootfs.ParallelFS: ext4.FS is safe for concurrent use and reads
// through an io.ReaderAt (a file or the qcow2 image, both safe for parallel ReadAt), so a few
// files read at once keep the disk queue and the qcow2 inflaters busy.
func (extFS) ParallelReads() int { return 4 }
