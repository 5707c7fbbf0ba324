package images

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// gunzipTestdata returns the decompressed content of a gzipped file of images/xfs/testdata.
func gunzipTestdata(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("xfs", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConvertXFS converts the XFS test images (every directory, file, symlink and attribute form;
// see xfs/testdata/mkimage.sh) and compares the layer with GNU tar of the same tree, taken
// through a mount when the image was made.
func TestConvertXFS(t *testing.T) {
	for _, variant := range []string{"v5", "v5-1k", "v4"} {
		t.Run(variant, func(t *testing.T) {
			img := gunzipTestdata(t, variant+".img.gz")
			want, err := tartest.Read(bytes.NewReader(gunzipTestdata(t, variant+".tar.gz")))
			if err != nil {
				t.Fatal(err)
			}
			var layer bytes.Buffer
			res, err := Convert(context.Background(), bytes.NewReader(img), int64(len(img)), &layer, WithoutAdaptation())
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			got, err := tartest.Read(&layer)
			if err != nil {
				t.Fatal(err)
			}
			if res.Filesystem != "xfs" || (res.OS.OSID != "rocky" && res.OS.OSID != "centos") {
				t.Errorf("filesystem %q, os %q; want xfs, rocky", res.Filesystem, res.OS.OSID)
			}
			if variant == "v4" {
				// mkfs.xfs -p sets every mtime and the attributes come from xfs_db, not from the
				// tree (the xfs package tests them): compare the rest.
				v4 := tartest.Options{Skip: func(n string) bool { return n == "." }, MtimePrecision: -1,
					SkipXattr: func(string) bool { return true }}
				diffs := tartest.Compare(want, got, v4)
				for _, d := range diffs {
					t.Error(d)
				}
				t.Logf("%s: %d entries compared, %d differences", variant, len(want), len(diffs))
				return
			}
			opts := tartest.Options{
				Skip: func(n string) bool { return n == "." },
				// Listed by the kernel next to system.posix_acl_* for a privileged reader, so GNU
				// tar as root records both; the layer carries the ACL once, under its VFS name.
				SkipXattr: func(n string) bool { return strings.HasPrefix(n, "trusted.SGI_ACL_") },
			}
			diffs := tartest.Compare(want, got, opts)
			for _, d := range diffs {
				t.Error(d)
			}
			t.Logf("%s: %d entries compared, %d differences", variant, len(want), len(diffs))
			// The comparison is only as good as what the reference holds: make sure the
			// features under test are in it.
			for _, c := range []struct {
				name, xattr string
			}{{"small", "system.posix_acl_access"}, {"d5", "system.posix_acl_default"},
				{"random", "security.capability"}, {"random", "user.big"}, {"small", "trusted.note"},
				{"attrs/node", "user.node-attribute-number-400"}} {
				if _, ok := got[c.name].Xattrs[c.xattr]; !ok {
					t.Errorf("%s: no %s in the layer", c.name, c.xattr)
				}
			}
			if e := got["longlink"]; e == nil || len(e.Linkname) < 700 {
				t.Errorf("longlink: %+v", e)
			}
			if e := got["blockdev"]; e == nil || e.Devmajor != 259 || e.Devminor != 70000 {
				t.Errorf("blockdev: %+v", e)
			}
			if e := got["small"]; e == nil || e.ModTime.Year() != 2038 || e.ModTime.Nanosecond() != 123456789 {
				t.Errorf("small (bigtime mtime): %+v", e)
			}
		})
	}
}

// TestConvertXFSDamaged: a truncated or overwritten XFS image ends with ErrInvalidImage, never a
// panic or a partial success passed off as complete.
func TestConvertXFSDamaged(t *testing.T) {
	img := gunzipTestdata(t, "v5.img.gz")
	cut := img[:len(img)/2]
	if err := convertBytes(cut); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("truncated image: %v, want ErrInvalidImage", err)
	}
}

// TestConvertXFSBareMagic: a partition with the XFS magic but no valid superblock behind it is
// reported as an invalid image (no root found), not as an unsupported filesystem.
func TestConvertXFSBareMagic(t *testing.T) {
	b := make([]byte, 1<<20)
	copy(b, "XFSB")
	err := convertBytes(b)
	if !errors.Is(err, ErrNoRootFilesystem) || !errors.Is(err, ErrInvalidImage) || errors.Is(err, ErrUnsupportedFilesystem) {
		t.Errorf("bare XFS magic: %v", err)
	}
}
