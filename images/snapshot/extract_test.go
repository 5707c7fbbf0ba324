package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type ent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	size       int64 // for sparse-looking bodies of zeros
	xattrs     map[string]string
	mtime      time.Time
}

func mkTar(t *testing.T, ents ...ent) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: e.mtime, Format: tar.FormatPAX}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 123456789)
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body)) + e.size
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
			tw.Write(make([]byte, e.size))
		}
	}
	tw.Close()
	return &buf
}

func newTree(t *testing.T) (*tree, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tr, err := openTree(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, dir
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"./": "", ".": "", "etc/": "etc", "./etc//passwd": "etc/passwd", "a/./b": "a/b"} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/etc/passwd", "../x", "a/../../b", "a/..", "", "a\x00b"} {
		if _, err := cleanName(in); !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("cleanName(%q) err = %v, want ErrUnsafeEntry", in, err)
		}
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	cases := map[string][]ent{
		"absolute":         {{name: "/etc/x", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"dotdot":           {{name: "../x", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"through symlink":  {{name: "a", typ: tar.TypeSymlink, link: outside}, {name: "a/pwned", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"relative symlink": {{name: "a", typ: tar.TypeSymlink, link: "../../../../../../" + outside}, {name: "a/pwned", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"link via symlink": {{name: "a", typ: tar.TypeSymlink, link: outside}, {name: "h", typ: tar.TypeLink, link: "a/secret"}},
		"link dotdot":      {{name: "h", typ: tar.TypeLink, link: "../secret"}},
		"dir via symlink":  {{name: "a", typ: tar.TypeSymlink, link: outside}, {name: "a/d/", typ: tar.TypeDir, mode: 0o755}},
	}
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			tr, _ := newTree(t)
			_, err := tr.extract(context.Background(), mkTar(t, ents...), nil)
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("err = %v, want ErrUnsafeEntry", err)
			}
			names, _ := os.ReadDir(outside)
			if len(names) != 1 {
				t.Fatalf("something was written outside the tree: %v", names)
			}
		})
	}
}

func TestExtractFidelity(t *testing.T) {
	tr, dir := newTree(t)
	mt := time.Unix(1600000000, 987654321)
	in := mkTar(t,
		ent{name: "./", typ: tar.TypeDir, mode: 0o755, mtime: mt},
		ent{name: "usr/", typ: tar.TypeDir, mode: 0o755, mtime: mt},
		ent{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755, mtime: mt},
		ent{name: "usr/bin/sudo", typ: tar.TypeReg, mode: 0o4755, body: "#!sudo", mtime: mt},
		ent{name: "usr/bin/sudoedit", typ: tar.TypeLink, link: "usr/bin/sudo"},
		ent{name: "bin", typ: tar.TypeSymlink, link: "usr/bin", mtime: mt},
		ent{name: "var/log/sparse", typ: tar.TypeReg, mode: 0o640, body: "head", size: 1 << 20, mtime: mt},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: mt},
		ent{name: "etc/x", typ: tar.TypeReg, mode: 0o644, body: "first"},
		ent{name: "etc/x", typ: tar.TypeReg, mode: 0o600, body: "second"},
	)
	st, err := tr.extract(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.finish(); err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.HardLinks != 1 || st.Symlinks != 1 || st.Devices != 1 {
		t.Errorf("stats %+v", st)
	}
	fi, err := os.Lstat(filepath.Join(dir, "usr/bin/sudo"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mt) {
		t.Errorf("sudo: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dir, "usr/bin/sudo"), &a)
	unix.Lstat(filepath.Join(dir, "usr/bin/sudoedit"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link not preserved")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin")); l != "usr/bin" {
		t.Errorf("symlink -> %q", l)
	}
	var sp unix.Stat_t
	unix.Stat(filepath.Join(dir, "var/log/sparse"), &sp)
	if sp.Size != 4+1<<20 || sp.Blocks*512 >= 1<<20 {
		t.Errorf("sparse file: size %d, allocated %d (holes expected)", sp.Size, sp.Blocks*512)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "tmp")); fi.Mode()&os.ModeSticky == 0 || !fi.ModTime().Equal(mt) {
		t.Errorf("tmp: %v %v", fi.Mode(), fi.ModTime())
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "usr/bin")); !fi.ModTime().Equal(mt) {
		t.Errorf("directory mtime %v, want %v (set after children)", fi.ModTime(), mt)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/x")); string(b) != "second" {
		t.Errorf("later entry must replace: %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "run/fifo")); fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v", fi.Mode())
	}
}

func TestExtractXattrs(t *testing.T) {
	tr, dir := newTree(t)
	probe := filepath.Join(dir, "probe")
	os.WriteFile(probe, nil, 0o600)
	if err := unix.Setxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("the test directory's filesystem has no user xattrs: %v", err)
	}
	in := mkTar(t, ent{name: "f", typ: tar.TypeReg, mode: 0o644, body: "x", xattrs: map[string]string{"user.k": "v\x00bin"}})
	if _, err := tr.extract(context.Background(), in, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(dir, "f"), "user.k", buf)
	if err != nil || string(buf[:n]) != "v\x00bin" {
		t.Errorf("xattr %q %v", buf[:n], err)
	}
}

func TestExtractKeepExisting(t *testing.T) {
	tr, dir := newTree(t)
	tr.extract(context.Background(), mkTar(t, ent{name: "boot/", typ: tar.TypeDir, mode: 0o755}, ent{name: "boot/mine", typ: tar.TypeReg, mode: 0o644, body: "guest"}), nil)
	st, err := tr.extract(context.Background(), mkTar(t,
		ent{name: "boot/", typ: tar.TypeDir, mode: 0o700},
		ent{name: "boot/mine", typ: tar.TypeReg, mode: 0o644, body: "original"},
		ent{name: "boot/vmlinuz", typ: tar.TypeReg, mode: 0o644, body: "kernel"},
		ent{name: "etc/other", typ: tar.TypeReg, mode: 0o644, body: "no"},
	), func(h *tar.Header, rel string, _ io.Reader) (bool, mergeMode, error) {
		return strings.HasPrefix(rel, "boot"), keepExisting, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "boot/mine")); string(b) != "guest" {
		t.Errorf("guest file replaced: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "boot/vmlinuz")); string(b) != "kernel" {
		t.Errorf("kernel not merged: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "boot")); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing dir metadata changed: %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/other")); err == nil {
		t.Error("filtered entry written")
	}
	if st.Entries != 1 || st.Skipped != 2 {
		t.Errorf("stats %+v", st)
	}
	if !hasKernel(tr) {
		t.Error("hasKernel false")
	}
}

func TestExtractBadTar(t *testing.T) {
	tr, _ := newTree(t)
	b := mkTar(t, ent{name: "f", typ: tar.TypeReg, mode: 0o644, body: strings.Repeat("x", 5000)})
	_, err := tr.extract(context.Background(), bytes.NewReader(b.Bytes()[:2000]), nil)
	if !errors.Is(err, ErrBadTar) {
		t.Fatalf("truncated tar: err = %v, want ErrBadTar", err)
	}
}
