package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const (
	cgroupSuperMagic = 0x27e0eb
	fuseSuperMagic   = 0x65735546
)

func isCgroupFS(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == cgroupSuperMagic
}

// CheckLXCFS reports whether an lxcfs FUSE filesystem is mounted at dir
// and serves the files the instance container binds.
func CheckLXCFS(dir string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Type != fuseSuperMagic {
		return fmt.Errorf("%s is not a FUSE mount (is lxcfs running?)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "proc", "meminfo")); err != nil {
		return fmt.Errorf("lxcfs at %s: %w", dir, err)
	}
	return nil
}

// cgroupVersionOfHost distinguishes a unified (v2) tree from v1/hybrid.
func cgroupVersionOfHost(root string) (int, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", root, err)
	}
	const cgroup2SuperMagic = 0x63677270
	if st.Type == cgroup2SuperMagic {
		return 2, nil
	}
	if _, err := os.Stat(filepath.Join(root, "memory")); errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no memory controller under %s", root)
	}
	return 1, nil
}
