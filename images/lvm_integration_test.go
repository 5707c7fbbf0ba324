//go:build integration

package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// TestConvertLVMDebianImage converts the cached RHEL-style LVM image (tests/images/build.sh lvm:
// MBR, p1 /boot ext4, p2 an LVM PV with VG rootvg and LV rootlv holding / as ext4; plain and
// zlib qcow2) and compares the unadapted layer with GNU tar of the tree it was built from.
func TestConvertLVMDebianImage(t *testing.T) {
	dir := os.Getenv("NCA_IMAGES_DIR")
	if dir == "" {
		dir = "/var/cache/nca/images"
	}
	src := filepath.Join(dir, "rootfs-small")
	for _, p := range []string{src, filepath.Join(dir, "debian12-small-lvm.stamp")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run tests/images/build.sh lvm", err)
		}
	}
	want := tartest.GNUTar(t, src, filepath.Join(t.TempDir(), "gnu.tar"))
	for _, name := range []string{"debian12-small-lvm.qcow2", "debian12-small-lvm-c.qcow2"} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got, res := convertFile(t, filepath.Join(dir, name), WithoutAdaptation())
			t.Logf("%s: %d entries, %d data bytes in %v; root LV %s in partition %d (%s, %s)", name, res.Entries, res.DataBytes,
				time.Since(start).Round(time.Millisecond), res.RootLV, res.RootPartition, res.Filesystem, res.RootReason)
			if res.RootLV != "rootvg/rootlv" || res.RootPartition != 2 || res.Filesystem != "ext4" || res.OS.OSID != "debian" {
				t.Errorf("root LV %q in partition %d, filesystem %q, os %q; want rootvg/rootlv in 2, ext4, debian",
					res.RootLV, res.RootPartition, res.Filesystem, res.OS.OSID)
			}
			opts := tartest.Options{MtimePrecision: time.Second, Skip: func(n string) bool {
				// The builder writes its own fstab, moves /boot to partition 1 (the LV keeps an
				// empty mount point) and mkfs.ext4 adds lost+found.
				return n == "." || n == "etc/fstab" || n == "lost+found" || n == "boot" || strings.HasPrefix(n, "boot/")
			}}
			diffs := tartest.Compare(want, got, opts)
			for i, d := range diffs {
				if i == 50 {
					t.Errorf("… and %d more", len(diffs)-50)
					break
				}
				t.Error(d)
			}
			if _, ok := got["boot"]; !ok {
				t.Errorf("the LV's /boot mount point is missing")
			}
			t.Logf("compared %d reference entries with %d produced entries: %d differences", len(want), len(got), len(diffs))
		})
	}
}
