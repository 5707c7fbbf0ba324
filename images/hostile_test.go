package images

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// hostileBase builds a small ext4 image to damage: /a/f, /a/b/, /evil_name, /big.
func hostileBase(t *testing.T) []byte {
	t.Helper()
	tartest.Need(t, "mkfs.ext4", "debugfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "a/f"), []byte("x\n"), 0o644)
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	write(t, filepath.Join(src, "evil_name"), []byte("y\n"), 0o644)
	write(t, filepath.Join(src, "etc/os-release"), []byte("ID=debian\n"), 0o644)
	img := filepath.Join(dir, "img")
	tartest.MkfsExt4(t, src, img, 8<<20, "-b", "4096")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func debugfsImage(t *testing.T, b []byte, cmds ...string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		tartest.Run(t, "debugfs", "-w", "-R", c, p)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func convertBytes(b []byte) error {
	_, err := Convert(context.Background(), bytes.NewReader(b), int64(len(b)), io.Discard)
	return err
}

func TestHostileFilesystems(t *testing.T) {
	base := hostileBase(t)
	if err := convertBytes(base); err != nil {
		t.Fatalf("undamaged base image: %v", err)
	}
	cases := map[string][]byte{
		"directory cycle":      debugfsImage(t, base, "link /a /a/b/loop"),
		"extent past the end":  debugfsImage(t, base, "sif /a/f block[5] 0x7ffffff0"),
		"extent header broken": debugfsImage(t, base, "sif /a/f block[0] 0x1234"),
	}
	// A name with '/' in it: "evil_name" becomes "evil/name" in its directory block.
	slash := bytes.Clone(base)
	if i := bytes.Index(slash, []byte("evil_name")); i < 0 {
		t.Fatal("evil_name not found in the image")
	} else {
		slash[i+4] = '/'
	}
	cases["name with a slash"] = slash
	// Superblock claims more inodes than its groups hold, and more blocks than the partition.
	inodes := bytes.Clone(base)
	binary.LittleEndian.PutUint32(inodes[1024:], 0xFFFFFFF0)
	cases["inode count beyond the groups"] = inodes
	blocks := bytes.Clone(base)
	binary.LittleEndian.PutUint32(blocks[1024+4:], 0x7FFFFFFF)
	cases["block count beyond the partition"] = blocks
	for name, img := range cases {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- convertBytes(img) }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrInvalidImage) && !errors.Is(err, ErrNoRootFilesystem) {
					t.Fatalf("got %v, want ErrInvalidImage", err)
				}
				t.Logf("clear error: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("conversion of a hostile image did not end")
			}
		})
	}
}

// TestManyEmptyFiles converts a tree of many empty files and reports the heap it needed: the
// walk streams directory blocks, so memory does not grow with the entry count. (mke2fs -d is
// quadratic in the size of one directory, hence 100 directories; 200k files measured by hand
// with nca-img2tar: 2.0 s, 18 MB peak RSS.)
func TestManyEmptyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 30k files")
	}
	tartest.Need(t, "mkfs.ext4")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "etc/os-release"), []byte("ID=debian\n"), 0o644)
	const n = 30000
	for d := range 100 {
		os.MkdirAll(filepath.Join(src, "many", fmt.Sprint(d)), 0o755)
	}
	for i := range n {
		f, err := os.Create(filepath.Join(src, "many", fmt.Sprint(i%100), fmt.Sprintf("%07d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	img := filepath.Join(dir, "img")
	tartest.MkfsExt4(t, src, img, 128<<20, "-b", "4096", "-N", "40000")
	os.RemoveAll(src)
	f, _ := os.Open(img)
	defer f.Close()
	st, _ := f.Stat()
	var peak uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	res, err := Convert(context.Background(), f, st.Size(), io.Discard)
	close(stop)
	<-sampled // the sampler's last write to peak happens before this read
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Files < n || res.Entries != res.Stats.Files+res.Stats.Dirs+res.Stats.Symlinks+res.Stats.Hardlinks+res.Stats.Devices+res.Stats.Fifos {
		t.Fatalf("stats %+v: want ≥ %d files, entries the sum of the kinds", res.Stats, n)
	}
	t.Logf("%d entries in %s, peak heap in use ≈ %.1f MiB", res.Entries, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20))
}

//go:embed testdata/tiny-ext4.img.gz
var tinyExt4 []byte

func FuzzExt4(f *testing.F) {
	zr, err := gzip.NewReader(bytes.NewReader(tinyExt4))
	if err != nil {
		f.Fatal(err)
	}
	base, err := io.ReadAll(zr)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds damage the superblock, group descriptors, inode table and a directory block.
	f.Add(uint32(1024+4), []byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(uint32(2048), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x10})
	f.Add(uint32(5*1024+128+40), []byte{0x0a, 0xf3, 0xff, 0x00})
	f.Add(uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		img := bytes.Clone(base)
		if len(patch) > 4096 {
			patch = patch[:4096]
		}
		copy(img[int(off)%len(img):], patch)
		_, _ = Convert(context.Background(), bytes.NewReader(img), int64(len(img)), io.Discard)
	})
}
