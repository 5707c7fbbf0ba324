package xfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// patched is an image with bytes replaced at one offset, read without copying the image.
type patched struct {
	base  []byte
	off   int64
	patch []byte
}

func (p *patched) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(p.base)) {
		return 0, io.EOF
	}
	n := copy(b, p.base[off:])
	// Overlay the part of the patch that falls in [off, off+n).
	lo, hi := max(off, p.off), min(off+int64(n), p.off+int64(len(p.patch)))
	if lo < hi {
		copy(b[lo-off:hi-off], p.patch[lo-p.off:hi-p.off])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// walkAll reads everything a tar writer would: every directory (each once), file content,
// symlink target and attribute list. It stops at the first error, or after maxEntries.
func walkAll(f *FS) (entries int, err error) {
	const maxEntries = 100000
	root, err := f.Inode(f.RootIno())
	if err != nil {
		return 0, err
	}
	seen := map[uint64]bool{}
	buf := make([]byte, 64<<10)
	var walk func(dir *Inode) error
	walk = func(dir *Inode) error {
		if seen[dir.Ino] {
			return nil // a directory cycle: the tar writer reports it; here it just ends
		}
		seen[dir.Ino] = true
		var inos []uint64
		if err := f.ReadDir(dir, func(name string, ino uint64) error {
			inos = append(inos, ino)
			return nil
		}); err != nil {
			return err
		}
		for _, ino := range inos {
			if entries++; entries > maxEntries {
				return nil
			}
			in, err := f.Inode(ino)
			if err != nil {
				return err
			}
			if _, err := f.Xattrs(in); err != nil {
				return err
			}
			switch in.Type() {
			case S_IFDIR:
				if err := walk(in); err != nil {
					return err
				}
			case S_IFLNK:
				if _, err := f.Readlink(in); err != nil {
					return err
				}
			case S_IFREG:
				if in.Size > uint64(f.Size()) {
					continue // the tar writer refuses such a file before reading it (rootfs.ErrUnsafe)
				}
				r, err := f.Open(in)
				if err != nil {
					return err
				}
				if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return entries, walk(root)
}

// sentinel reports whether err is nil or one of the package's sentinels: any other error from
// a damaged image would be a reader bug (an unchecked offset reaching the end of the input).
func sentinel(err error) bool {
	return err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrNotXFS)
}

func openWalk(r io.ReaderAt, size int64) error {
	f, err := Open(r, size)
	if err != nil {
		return err
	}
	_, err = walkAll(f)
	return err
}

func TestWalkUndamaged(t *testing.T) {
	for _, name := range []string{"fuzz", "v5", "v5-1k", "v4"} {
		b := image(t, name)
		f, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		n, err := walkAll(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %d entries walked", name, n)
	}
}

func TestHostileSuperblock(t *testing.T) {
	base := image(t, "fuzz")
	put32 := func(off int, v uint32) []byte {
		p := make([]byte, 4)
		binary.BigEndian.PutUint32(p, v)
		return p
	}
	put64 := func(off int, v uint64) []byte {
		p := make([]byte, 8)
		binary.BigEndian.PutUint64(p, v)
		return p
	}
	for _, c := range []struct {
		name  string
		off   int64
		patch []byte
		want  error
	}{
		{"no magic", 0, []byte("XFSC"), ErrNotXFS},
		{"blocks beyond the partition", 8, put64(8, 1<<40), ErrCorrupt},
		{"block size not a power of two", 4, put32(4, 4097), ErrCorrupt},
		{"no allocation groups", 88, put32(88, 0), ErrCorrupt},
		{"allocation group size", 84, put32(84, 3), ErrCorrupt},
		{"inode size", 104, []byte{0x01, 0x00}, ErrCorrupt},
		{"unknown incompatible feature", 216, put32(216, 0x8000000b), ErrUnsupported},
		{"needs repair", 216, put32(216, 0x1b), ErrUnsupported},
		{"realtime subvolume", 16, put64(16, 100), ErrUnsupported},
		{"superblock version 0", 100, []byte{0xb4, 0xa0}, ErrCorrupt},
		{"root inode outside", 56, put64(56, 1<<50), ErrCorrupt},
		{"mkfs in progress", 126, []byte{1}, ErrCorrupt},
		{"metadata directory tree", 216, put32(216, 0x10b), ErrUnsupported},
	} {
		err := openWalk(&patched{base: base, off: c.off, patch: c.patch}, int64(len(base)))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	f, err := Open(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	file, err := f.Lookup("/fragmented")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(&patched{base: base, off: 56, patch: put64(56, file.Ino)}, int64(len(base))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("root inode is a file: %v", err)
	}
	if _, err := Open(bytes.NewReader(base[:100]), 100); !errors.Is(err, ErrNotXFS) {
		t.Errorf("100-byte input: %v", err)
	}
	if _, err := Open(bytes.NewReader(base), int64(len(base))/2); !errors.Is(err, ErrCorrupt) {
		t.Errorf("half the partition: %v", err)
	}
}

func TestHostileNames(t *testing.T) {
	// "file-10" in d40's directory block (and wherever else the log copied it) becomes
	// "fi/e-10": a name that would escape its directory.
	img := bytes.ReplaceAll(image(t, "fuzz"), []byte("file-10"), []byte("fi/e-10"))
	if err := openWalk(bytes.NewReader(img), int64(len(img))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("name with a slash: %v", err)
	}
}

// nonZeroSectors lists the 512-byte sectors of b holding anything: where the metadata is.
func nonZeroSectors(b []byte) []int64 {
	var out []int64
	zero := make([]byte, 512)
	for off := 0; off+512 <= len(b); off += 512 {
		if !bytes.Equal(b[off:off+512], zero) {
			out = append(out, int64(off))
		}
	}
	return out
}

// TestHostileSweep damages every metadata sector of the small image in a few ways and walks
// it: each walk must end, with nil or a package sentinel, never a panic or another error.
func TestHostileSweep(t *testing.T) {
	base := image(t, "fuzz")
	secs := nonZeroSectors(base)
	patches := [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 0, 0, 0, 0, 0}, {0x7f, 0xff, 0xff, 0xfe}, {0, 0, 0, 1}}
	step := max(1, len(secs)/120)
	start, walks := time.Now(), 0
	var slowest time.Duration
	var slowAt string
	for k := 0; k < len(secs); k += step {
		for pi, p := range patches {
			for _, rel := range []int64{0, 4, 8, 16, 56, 64 + 8*int64(k%8)} {
				off := secs[k] + rel
				t0 := time.Now()
				err := openWalk(&patched{base: base, off: off, patch: p}, int64(len(base)))
				if d := time.Since(t0); d > slowest {
					slowest, slowAt = d, fmt.Sprintf("%#x+%d patch %d", secs[k], rel, pi)
				}
				walks++
				if !sentinel(err) {
					t.Errorf("sector at %#x+%d patch %d: %v", secs[k], rel, pi, err)
				}
			}
		}
	}
	t.Logf("%d damaged walks over %d of %d metadata sectors in %v; slowest %v (%s)", walks, (len(secs)+step-1)/step, len(secs),
		time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond), slowAt)
}

// FuzzOpen damages the small image (one patch in a sector that holds data: superblock, inode,
// directory, B+tree, attribute or symlink block) and walks all of it.
func FuzzOpen(f *testing.F) {
	base := image(f, "fuzz")
	secs := nonZeroSectors(base)
	f.Add(uint32(0), uint16(8), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(100), uint16(0), []byte{0, 0})
	f.Add(uint32(2000), uint16(64), []byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(uint32(0), uint16(0), []byte{})
	f.Fuzz(func(t *testing.T, sec uint32, rel uint16, patch []byte) {
		if len(patch) > 4096 {
			patch = patch[:4096]
		}
		off := secs[int(sec)%len(secs)] + int64(rel%4096)
		err := openWalk(&patched{base: base, off: off, patch: patch}, int64(len(base)))
		if !sentinel(err) {
			t.Fatal(fmt.Errorf("patch at %#x: error without a sentinel: %w", off, err))
		}
	})
}
