package images

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkConvertXFS reports MB/s of file content streamed into the tar layer (b.SetBytes) for
// XFS roots: the committed 5,000-entry test image (reader and walker cost, in memory), and the
// cached Debian 12 XFS images, plain and zlib qcow2 (tests/images/build.sh xfs builds them).
func BenchmarkConvertXFS(b *testing.B) {
	b.Run("testdata-v5", func(b *testing.B) {
		img := gunzipTestdata(b, "v5.img.gz")
		var res *Result
		var err error
		for b.Loop() {
			res, err = Convert(context.Background(), bytes.NewReader(img), int64(len(img)), io.Discard, WithoutAdaptation())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(res.DataBytes)
		}
		b.ReportMetric(float64(res.Entries), "entries")
	})
	for _, name := range []string{"debian12-small-xfs.qcow2", "debian12-small-xfs-c.qcow2"} {
		b.Run(name, func(b *testing.B) {
			path := filepath.Join("/var/cache/nca/images", name)
			f, err := os.Open(path)
			if err != nil {
				b.Skipf("%v: run tests/images/build.sh xfs", err)
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
