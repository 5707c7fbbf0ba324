package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

var benchImages struct {
	once sync.Once
	dir  string
	err  error
}

// benchImage builds (once per run) a generated 96 MiB tree as an MBR disk in three formats.
func benchImage(b *testing.B, format string) string {
	b.Helper()
	tartest.Need(b, "mkfs.ext4", "sfdisk", "qemu-img")
	benchImages.once.Do(func() {
		dir, err := os.MkdirTemp("", "nca-images-bench-")
		if err != nil {
			benchImages.err = err
			return
		}
		benchImages.dir = dir
		src := filepath.Join(dir, "src")
		rng := rand.New(rand.NewPCG(3, 4))
		put := func(p string, data []byte) {
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, data, 0o644)
		}
		put(filepath.Join(src, "etc/os-release"), []byte("ID=debian\n"))
		// A mix like a distro tree: many small text files, some large binaries.
		text := bytes.Repeat([]byte("package configuration line with words\n"), 2000)
		for i := range 4000 {
			put(filepath.Join(src, fmt.Sprintf("usr/share/doc/pkg%03d/file%d", i/20, i)), text[:rng.IntN(len(text))])
		}
		for i := range 12 {
			data := make([]byte, 4<<20)
			for k := range data {
				if k%3 == 0 {
					data[k] = byte(rng.Uint32())
				}
			}
			put(filepath.Join(src, fmt.Sprintf("usr/lib/bin%02d.so", i)), data)
		}
		part := filepath.Join(dir, "root.img")
		tartest.MkfsExt4(b, src, part, 256<<20, "-b", "4096")
		raw := tartest.WrapDisk(b, dir, tartest.Layout{Label: "dos", Parts: []tartest.Part{{Image: part, Type: "83"}}})
		tartest.QemuConvert(b, raw, filepath.Join(dir, "plain.qcow2"), "-O", "qcow2")
		tartest.QemuConvert(b, raw, filepath.Join(dir, "zlib.qcow2"), "-c", "-O", "qcow2")
		tartest.QemuConvert(b, raw, filepath.Join(dir, "zstd.qcow2"), "-c", "-O", "qcow2", "-o", "compression_type=zstd")
		os.RemoveAll(src)
	})
	if benchImages.err != nil {
		b.Fatal(benchImages.err)
	}
	return filepath.Join(benchImages.dir, format+".qcow2")
}

// BenchmarkConvert reports MB/s of file content streamed into the tar layer (b.SetBytes), plus
// the tar bytes per second, for a plain, a zlib and a zstd qcow2 image of the same tree.
func BenchmarkConvert(b *testing.B) {
	for _, format := range []string{"plain", "zlib", "zstd"} {
		b.Run(format, func(b *testing.B) {
			path := benchImage(b, format)
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			var res *Result
			for b.Loop() {
				res, err = Convert(context.Background(), f, st.Size(), io.Discard, WithoutAdaptation())
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(res.DataBytes)
			}
			b.ReportMetric(float64(res.Entries), "entries")
		})
	}
}

// BenchmarkConvertImageFile converts the qcow2 or raw images named in NCA_BENCH_IMAGES
// (space-separated paths, e.g. the cached test images of tests/images/build.sh) to io.Discard
// with the container adaptation on, as the agent does: the reader side of tests/bench/images.sh,
// under the profiler (-cpuprofile, -memprofile). Without the variable it is skipped.
func BenchmarkConvertImageFile(b *testing.B) {
	paths := strings.Fields(os.Getenv("NCA_BENCH_IMAGES"))
	if len(paths) == 0 {
		b.Skip("set NCA_BENCH_IMAGES to qcow2 paths (e.g. /var/cache/nca/images/debian12-small-mbr-c.qcow2)")
	}
	for _, path := range paths {
		b.Run(filepath.Base(path), func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				b.Fatal(err)
			}
			var res *Result
			for b.Loop() {
				res, err = Convert(context.Background(), f, st.Size(), io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(res.DataBytes)
			}
			b.ReportMetric(float64(res.Entries), "entries")
			b.ReportMetric(float64(res.TarBytes)/1e6, "tarMB")
		})
	}
}
