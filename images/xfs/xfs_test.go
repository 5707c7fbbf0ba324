package xfs

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var images sync.Map // testdata name → decompressed bytes

// image returns a decompressed test image of testdata (see testdata/mkimage.sh for content).
func image(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := images.Load(name); ok {
		return b.([]byte)
	}
	f, err := os.Open(filepath.Join("testdata", name+".img.gz"))
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
	images.Store(name, b)
	return b
}

func open(t testing.TB, name string) *FS {
	t.Helper()
	b := image(t, name)
	f, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	return f
}

func lookup(t *testing.T, f *FS, p string) *Inode {
	t.Helper()
	in, err := f.Lookup(p)
	if err != nil {
		t.Fatalf("Lookup %s: %v", p, err)
	}
	return in
}

func content(t *testing.T, f *FS, p string) []byte {
	t.Helper()
	in := lookup(t, f, p)
	r, err := f.Open(in)
	if err != nil {
		t.Fatalf("Open %s: %v", p, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if uint64(len(b)) != in.Size {
		t.Fatalf("%s: read %d bytes, size %d", p, len(b), in.Size)
	}
	return b
}

func names(t *testing.T, f *FS, p string) []string {
	t.Helper()
	var out []string
	if err := f.ReadDir(lookup(t, f, p), func(name string, ino uint64) error {
		out = append(out, name)
		return nil
	}); err != nil {
		t.Fatalf("ReadDir %s: %v", p, err)
	}
	return out
}

func xattrs(t *testing.T, f *FS, p string) map[string][]byte {
	t.Helper()
	xs, err := f.Xattrs(lookup(t, f, p))
	if err != nil {
		t.Fatalf("Xattrs %s: %v", p, err)
	}
	m := map[string][]byte{}
	for _, x := range xs {
		if _, dup := m[x.Name]; dup {
			t.Errorf("%s: xattr %s twice", p, x.Name)
		}
		m[x.Name] = x.Value
	}
	return m
}

// TestForms checks each on-disk form the test images were built to contain, against what
// mkimage.sh wrote, for 4 KiB blocks and for 1 KiB blocks with 8 KiB directory blocks and
// large extent counts.
func TestForms(t *testing.T) {
	for _, variant := range []string{"v5", "v5-1k"} {
		t.Run(variant, func(t *testing.T) {
			f := open(t, variant)
			if f.Version() != 5 || f.Label() != "testvol" || len(f.UUID()) != 36 {
				t.Errorf("superblock: version %d label %q uuid %q", f.Version(), f.Label(), f.UUID())
			}
			// Directories: short-form, block, leaf, node (B+tree mapped, with freed entries).
			for _, d := range []struct {
				path   string
				format int
				n      int
			}{{"/d5", fmtLocal, 5}, {"/d40", fmtExtents, 40}, {"/d200", fmtExtents, 200}, {"/d5000", fmtBtree, 4900}} {
				in := lookup(t, f, d.path)
				if variant == "v5" && in.format != d.format {
					t.Errorf("%s: data fork format %d, want %d (the test image no longer covers it)", d.path, in.format, d.format)
				}
				got := names(t, f, d.path)
				seen := map[string]bool{}
				for _, n := range got {
					seen[n] = true
				}
				if len(got) != d.n || len(seen) != d.n {
					t.Errorf("%s: %d entries (%d distinct), want %d", d.path, len(got), len(seen), d.n)
				}
			}
			if seen := names(t, f, "/d5000"); strings.Contains(strings.Join(seen, ","), "entry-number-150,") {
				t.Error("/d5000: a removed entry is listed")
			}

			if got := content(t, f, "/small"); string(got) != "small\n" {
				t.Errorf("small: %q", got)
			}
			want := []byte{}
			for i := 1; i <= 60000; i++ {
				want = fmt.Appendf(want, "%d\n", i)
			}
			if got := content(t, f, "/random"); !bytes.Equal(got, want) {
				t.Errorf("random: %d bytes differ from seq 1 60000", len(got))
			}
			sparse := make([]byte, 1048576+100)
			copy(sparse[65536:], bytes.Repeat([]byte{0x61}, 4096))
			copy(sparse[1048576:], bytes.Repeat([]byte{0x62}, 100))
			if got := content(t, f, "/sparse"); !bytes.Equal(got, sparse) {
				t.Error("sparse: content differs")
			}
			frag := make([]byte, 199*8192+4096)
			for i := range 200 {
				copy(frag[i*8192:], bytes.Repeat([]byte{byte(i%250 + 1)}, 4096))
			}
			if in := lookup(t, f, "/fragmented"); variant == "v5" && in.format != fmtBtree {
				t.Errorf("fragmented: format %d, want a B+tree", in.format)
			}
			if got := content(t, f, "/fragmented"); !bytes.Equal(got, frag) {
				t.Error("fragmented: content differs")
			}
			pre := make([]byte, 262144)
			copy(pre[100000:], bytes.Repeat([]byte{0x63}, 5000))
			if got := content(t, f, "/prealloc"); !bytes.Equal(got, pre) {
				t.Error("prealloc: unwritten ranges do not read as zeros")
			}

			ll, err := f.Inode(mustChild(t, f, "/", "longlink"))
			if err != nil {
				t.Fatal(err)
			}
			if variant == "v5" && ll.format != fmtExtents {
				t.Errorf("longlink: format %d, want a remote symlink", ll.format)
			}
			if s, err := f.Readlink(ll); err != nil || len(s) != 1+30*28+6 || !strings.HasSuffix(s, "/target") {
				t.Errorf("longlink: %q, %v", s, err)
			}
			sl, err := f.Inode(mustChild(t, f, "/", "shortlink"))
			if err != nil {
				t.Fatal(err)
			}
			if s, err := f.Readlink(sl); err != nil || s != "small" {
				t.Errorf("shortlink: %q, %v", s, err)
			}
			if !sl.Mtime.Equal(time.Date(1999, 12, 31, 23, 59, 59, 5e8, time.UTC)) {
				t.Errorf("shortlink mtime %v", sl.Mtime)
			}
			if in := lookup(t, f, "/small"); in.UID != 1000 || in.GID != 1001 ||
				!in.Mtime.Equal(time.Date(2038, 6, 1, 12, 34, 56, 123456789, time.UTC)) {
				t.Errorf("small: owner %d:%d mtime %v", in.UID, in.GID, in.Mtime)
			}
			if in := lookup(t, f, "/random"); in.Links != 2 || in.Perm() != 0o4755 {
				t.Errorf("random: %d links, mode %#o", in.Links, in.Perm())
			}
			if a, b := lookup(t, f, "/random"), lookup(t, f, "/hardlink"); a.Ino != b.Ino {
				t.Errorf("hardlink: inode %d, want %d", b.Ino, a.Ino)
			}
			for _, d := range []struct {
				path         string
				typ          uint16
				major, minor uint32
			}{{"/chardev", S_IFCHR, 4, 5}, {"/blockdev", S_IFBLK, 259, 70000}, {"/fifo", S_IFIFO, 0, 0}} {
				in := lookup(t, f, d.path)
				if ma, mi := in.Device(); in.Type() != d.typ || ma != d.major || mi != d.minor {
					t.Errorf("%s: type %#o device %d:%d", d.path, in.Type(), ma, mi)
				}
			}

			x := xattrs(t, f, "/small")
			le := binary.LittleEndian
			acl := func(entries ...uint32) []byte {
				b := le.AppendUint32(nil, 2)
				for i := 0; i < len(entries); i += 3 {
					b = le.AppendUint16(b, uint16(entries[i]))
					b = le.AppendUint16(b, uint16(entries[i+1]))
					b = le.AppendUint32(b, entries[i+2])
				}
				return b
			}
			const none = 0xFFFFFFFF
			// setfacl -m u:1234:rw,g:2345:r on a 0644 file, as getfattr -e hex shows it.
			wantACL := acl(aclUserObj, 6, none, aclUser, 6, 1234, aclGroupObj, 4, none, aclGroup, 4, 2345, aclMask, 6, none, aclOther, 4, none)
			if string(x["user.short"]) != "hello" || string(x["trusted.note"]) != "t" || !bytes.Equal(x["system.posix_acl_access"], wantACL) {
				t.Errorf("small xattrs: %q", x)
			}
			if _, ok := x["trusted.SGI_ACL_FILE"]; ok {
				t.Error("small: the ACL is also listed under its XFS name")
			}
			// setfacl -d -m u:1234:rwx,o::- on a 0755 directory.
			wantDef := acl(aclUserObj, 7, none, aclUser, 7, 1234, aclGroupObj, 5, none, aclMask, 7, none, aclOther, 0, none)
			if got := xattrs(t, f, "/d5")["system.posix_acl_default"]; !bytes.Equal(got, wantDef) {
				t.Errorf("d5 default ACL: % x\nwant % x", got, wantDef)
			}
			x = xattrs(t, f, "/random")
			big := []byte{}
			for i := 1; i <= 2000; i++ {
				if i > 1 {
					big = append(big, ',')
				}
				big = fmt.Appendf(big, "%d", i)
			}
			if !bytes.Equal(x["user.big"], big) || len(x["security.capability"]) != 20 {
				t.Errorf("random: user.big %d bytes (want %d), security.capability % x", len(x["user.big"]), len(big), x["security.capability"])
			}
			if x := xattrs(t, f, "/attrs"); len(x) != 30 || string(x["user.leaf-17"]) != "value-17" {
				t.Errorf("attrs: %d xattrs, leaf-17 = %q", len(x), x["user.leaf-17"])
			}
			x = xattrs(t, f, "/attrs/node")
			if len(x) != 400 || string(x["user.node-attribute-number-321"]) != fmt.Sprintf("value-321-%040d", 321) {
				t.Errorf("attrs/node: %d xattrs, #321 = %q", len(x), x["user.node-attribute-number-321"])
			}

			if b, err := f.ReadFile("/etc/../etc/./os-release", 100); err != nil || !strings.HasPrefix(string(b), "ID=rocky") {
				t.Errorf("ReadFile os-release: %q, %v", b, err)
			}
			if _, err := f.ReadFile("/random", 100); err == nil {
				t.Error("ReadFile over the limit succeeded")
			}
			if _, err := f.Lookup("/nonexistent/x"); err == nil {
				t.Error("Lookup of a missing path succeeded")
			}
		})
	}
}

func mustChild(t *testing.T, f *FS, dir, name string) uint64 {
	t.Helper()
	ino, err := f.lookupChild(lookup(t, f, dir), name)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestACLToVFS(t *testing.T) {
	disk := binary.BigEndian.AppendUint32(nil, 2)
	for _, e := range [][3]uint32{{aclUserObj, 0, 6}, {aclOther, 77, 4}} {
		disk = binary.BigEndian.AppendUint32(disk, e[0])
		disk = binary.BigEndian.AppendUint32(disk, e[1])
		disk = binary.BigEndian.AppendUint16(disk, uint16(e[2]))
		disk = append(disk, 0, 0)
	}
	got, err := aclToVFS(disk)
	want := []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("got % x, %v\nwant % x", got, err, want)
	}
	for _, bad := range [][]byte{{}, {0, 0, 0, 1}, disk[:len(disk)-1], append(bytes.Clone(disk[:4]), append(make([]byte, 3), 0x40, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)...)} {
		if _, err := aclToVFS(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("% x: %v", bad, err)
		}
	}
}

func TestDecodeExtent(t *testing.T) {
	// flag=1, startoff=0x123456789, startblock=0xABCDEF0123, blockcount=0x1FFFFF
	var rec [16]byte
	l0 := uint64(1)<<63 | uint64(0x123456789)<<9 | uint64(0xABCDEF0123)>>43
	l1 := (uint64(0xABCDEF0123)&(1<<43-1))<<21 | 0x1FFFFF
	binary.BigEndian.PutUint64(rec[:], l0)
	binary.BigEndian.PutUint64(rec[8:], l1)
	e := decodeExtent(rec[:])
	if !e.unwritten || e.logical != 0x123456789 || e.physical != 0xABCDEF0123 || e.length != 0x1FFFFF {
		t.Errorf("%+v", e)
	}
}

// TestV4 reads the v4 image (no CRCs: headerless directory, symlink, B+tree, attribute and
// remote value blocks; version 2 inodes). Its tree is compared with GNU tar in package images;
// the attributes, added with xfs_db attr_set (values of 'v' bytes), are checked here.
func TestV4(t *testing.T) {
	f := open(t, "v4")
	if f.Version() != 4 {
		t.Fatalf("version %d", f.Version())
	}
	if in := lookup(t, f, "/d5000"); in.format != fmtBtree {
		t.Errorf("d5000: format %d, want a B+tree", in.format)
	}
	if n := len(names(t, f, "/d5000")); n != 5000 {
		t.Errorf("d5000: %d entries", n)
	}
	v := func(n int) string { return strings.Repeat("v", n) }
	for _, c := range []struct {
		path string
		want map[string]string
	}{
		{"/small", map[string]string{"user.short": v(5), "trusted.note": v(1)}},
		{"/random", map[string]string{"user.big": v(9000)}},
	} {
		got := xattrs(t, f, c.path)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d xattrs, want %d", c.path, len(got), len(c.want))
		}
		for k, w := range c.want {
			if string(got[k]) != w {
				t.Errorf("%s: %s = %d bytes, want %d", c.path, k, len(got[k]), len(w))
			}
		}
	}
	if x := xattrs(t, f, "/d40"); len(x) != 30 || string(x["user.leaf-30"]) != v(7) {
		t.Errorf("d40: %d xattrs, leaf-30 = %q", len(x), x["user.leaf-30"])
	}
	ll, err := f.Inode(mustChild(t, f, "/", "longlink"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.Readlink(ll); err != nil || ll.format != fmtExtents || len(s) != 1+30*28+6 {
		t.Errorf("longlink (remote, format %d): %d bytes, %v", ll.format, len(s), err)
	}
}
