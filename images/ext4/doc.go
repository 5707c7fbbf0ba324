// Package ext4 reads ext2, ext3 and ext4 filesystems from an io.ReaderAt, inode by inode, with
// everything a faithful tar layer needs: owners (32-bit uid/gid), full mode bits, nanosecond
// timestamps, hard-link counts, device numbers, fast and slow symlinks, inline data, and extended
// attributes (in-inode, xattr block and ea_inode values; POSIX ACLs returned in the getxattr form).
//
// File content is streamed from the extent tree (or ext2/3 block map): holes and unwritten
// (fallocated) extents read as zeros. Directories are streamed one block at a time, which keeps a
// walk of millions of entries in bounded memory; walking by inode number (ReadDir hands out
// inode numbers) avoids re-resolving paths from the root.
//
// The input is untrusted: block numbers are checked against the filesystem size, which is checked
// against the partition size; extent trees must be strictly ordered and may not visit more nodes
// than the file has blocks; names containing '/' are refused. Journal replay is not done: a
// filesystem that needs recovery is readable but NeedsRecovery reports it.
//
// Example:
//
//	fsys, err := ext4.Open(io.NewSectionReader(disk, p.Start, p.Size), p.Size)
//	root, _ := fsys.Inode(ext4.RootIno)
//	err = fsys.ReadDir(root, func(name string, ino uint32) error { ... })
package ext4
