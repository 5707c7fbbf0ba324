//go:build integration

package images

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// TestConvertXFSDebianImage converts the cached Debian 12 image whose root is XFS (built by
// tests/images/build.sh xfs from rootfs-small, partitioned MBR, plain and zlib qcow2) and compares
// the unadapted layer with GNU tar of the source tree, entry for entry: content, modes, owners,
// mtimes, symlinks, hard links, devices and every xattr (capabilities, ACLs).
func TestConvertXFSDebianImage(t *testing.T) {
	dir := os.Getenv("NCA_IMAGES_DIR")
	if dir == "" {
		dir = "/var/cache/nca/images"
	}
	src := filepath.Join(dir, "rootfs-small")
	for _, p := range []string{src, filepath.Join(dir, "debian12-small-xfs.stamp")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run tests/images/build.sh xfs", err)
		}
	}
	want := tartest.GNUTar(t, src, filepath.Join(t.TempDir(), "gnu.tar"))
	for _, name := range []string{"debian12-small-xfs.qcow2", "debian12-small-xfs-c.qcow2"} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got, res := convertFile(t, filepath.Join(dir, name), WithoutAdaptation())
			t.Logf("%s: %d entries, %d data bytes in %v; root partition %d (%s, %s)", name, res.Entries, res.DataBytes,
				time.Since(start).Round(time.Millisecond), res.RootPartition, res.Filesystem, res.RootReason)
			if res.Filesystem != "xfs" || res.OS.OSID != "debian" {
				t.Errorf("filesystem %q, os %q; want xfs, debian", res.Filesystem, res.OS.OSID)
			}
			opts := tartest.Options{Skip: func(n string) bool {
				// The image builder writes its own fstab (root by UUID, xfs) and grub.cfg.
				return n == "." || n == "etc/fstab" || n == "boot/grub/grub.cfg"
			}}
			diffs := tartest.Compare(want, got, opts)
			for i, d := range diffs {
				if i == 50 {
					t.Errorf("… and %d more", len(diffs)-50)
					break
				}
				t.Error(d)
			}
			t.Logf("compared %d reference entries with %d produced entries: %d differences", len(want), len(got), len(diffs))
		})
	}
}
