package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSpoolReadAtWaitsForData(t *testing.T) {
	pr, pw := io.Pipe()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	sp, err := newSpool(context.Background(), t.TempDir(), pr, int64(len(data)), sha256.New())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	got := make(chan []byte)
	go func() {
		b := make([]byte, 100)
		if _, err := sp.ReadAt(b, 200_000); err != nil {
			t.Errorf("ReadAt: %v", err)
		}
		got <- b
	}()
	pw.Write(data[:100_000])
	select {
	case <-got:
		t.Fatal("ReadAt returned before its bytes were downloaded")
	case <-time.After(50 * time.Millisecond):
	}
	pw.Write(data[100_000:])
	pw.Close()
	if b := <-got; !bytes.Equal(b, data[200_000:200_100]) {
		t.Errorf("ReadAt returned wrong bytes")
	}
	n, err := sp.wait()
	if err != nil || n != int64(len(data)) {
		t.Errorf("wait = %d, %v", n, err)
	}
	if !bytes.Equal(sp.h.Sum(nil), func() []byte { s := sha256.Sum256(data); return s[:] }()) {
		t.Errorf("hash of spooled data differs")
	}
	// Reads past the end behave like a file: short read and io.EOF.
	b := make([]byte, 10)
	if m, err := sp.ReadAt(b, int64(len(data))-4); m != 4 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt at end = %d, %v", m, err)
	}
	if _, err := sp.ReadAt(b, -1); err == nil {
		t.Errorf("ReadAt(-1) succeeded")
	}
}

func TestSpoolErrors(t *testing.T) {
	t.Run("short body", func(t *testing.T) {
		sp, err := newSpool(context.Background(), t.TempDir(), io.NopCloser(strings.NewReader("abc")), 10, sha256.New())
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		if _, err := sp.ReadAt(make([]byte, 5), 0); !errors.Is(err, ErrDownload) {
			t.Errorf("ReadAt beyond a truncated download = %v, want ErrDownload", err)
		}
	})
	t.Run("long body", func(t *testing.T) {
		sp, _ := newSpool(context.Background(), t.TempDir(), io.NopCloser(strings.NewReader("abcdef")), 3, sha256.New())
		defer sp.Close()
		if _, err := sp.wait(); !errors.Is(err, ErrDownload) {
			t.Errorf("wait = %v, want ErrDownload", err)
		}
	})
	t.Run("cancel unblocks readers", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		pr, _ := io.Pipe()
		sp, _ := newSpool(ctx, t.TempDir(), pr, 100, sha256.New())
		defer sp.Close()
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if _, err := sp.ReadAt(make([]byte, 10), 0); !errors.Is(err, context.Canceled) {
			t.Errorf("ReadAt after cancel = %v", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := newSpool(context.Background(), "/nonexistent/spool", io.NopCloser(strings.NewReader("")), 0, sha256.New()); err == nil {
			t.Error("newSpool in a missing directory succeeded")
		}
	})
}

func TestHoldbackWithholdsTail(t *testing.T) {
	data := bytes.Repeat([]byte("tar-stream-"), 50_000) // 550 kB
	for _, chunk := range []int{1, 1000, holdbackSize - 1, holdbackSize, holdbackSize + 1, 1 << 20} {
		var out bytes.Buffer
		h := newHoldback(&out)
		for off := 0; off < len(data); off += chunk {
			if _, err := h.Write(data[off:min(off+chunk, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if out.Len() > len(data)-holdbackSize || out.Len() < len(data)-2*holdbackSize || !bytes.Equal(out.Bytes(), data[:out.Len()]) {
			t.Errorf("chunk %d: %d bytes forwarded before Release, want between %d and %d", chunk, out.Len(), len(data)-2*holdbackSize, len(data)-holdbackSize)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("chunk %d: stream differs after Release", chunk)
		}
	}
	var out bytes.Buffer
	h := newHoldback(&out)
	h.Write([]byte("short"))
	if out.Len() != 0 {
		t.Errorf("a stream shorter than the holdback leaked %d bytes", out.Len())
	}
}

func BenchmarkHoldback512(b *testing.B) {
	p := make([]byte, 512)
	h := newHoldback(io.Discard)
	b.SetBytes(512)
	for b.Loop() {
		h.Write(p)
	}
}

func TestFormatProgress(t *testing.T) {
	cases := []struct {
		read, written, total int64
		el                   time.Duration
		final, tty           bool
		want                 string
	}{
		{100e6, 250e6, 400e6, 10 * time.Second, false, true, " 25% read 100.0 MB of 400.0 MB, tar 250.0 MB, 10.0 MB/s, 10s, ETA 30s"},
		{100e6, 250e6, 400e6, 10 * time.Second, false, false, "read 100.0 MB of 400.0 MB, tar 250.0 MB, 10.0 MB/s, 10s"},
		{500e6, 700e6, 400e6, 20 * time.Second, false, true, " 99% read 500.0 MB of 400.0 MB, tar 700.0 MB, 25.0 MB/s, 20s, ETA 0s"},
		{400e6, 700e6, 400e6, 20 * time.Second, true, true, "done: read 400.0 MB of 400.0 MB, tar 700.0 MB, 20.0 MB/s, 20s"},
		{0, 0, 400e6, 0, false, true, "read 0.0 MB of 400.0 MB, tar 0.0 MB, 0.0 MB/s, 0s"},
	}
	for _, c := range cases {
		if got := formatProgress(c.read, c.written, c.total, c.el, c.final, c.tty); got != c.want {
			t.Errorf("formatProgress(%d,%d,%d,%v,%v,%v)\n got %q\nwant %q", c.read, c.written, c.total, c.el, c.final, c.tty, got, c.want)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"1.40", "1.41", true}, {"1.41", "1.41", false}, {"1.9", "1.41", true}, {"1.43", "1.41", false}, {"2.0", "1.41", false}} {
		if got := versionLess(c.a, c.b); got != c.want {
			t.Errorf("versionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestReadImportID(t *testing.T) {
	id, err := readImportID(strings.NewReader(`{"status":"sha256:abc"}` + "\n"))
	if err != nil || id != "sha256:abc" {
		t.Errorf("readImportID = %q, %v", id, err)
	}
	if _, err := readImportID(strings.NewReader(`{"errorDetail":{"message":"Error processing tar file: unexpected EOF"},"error":"x"}`)); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("readImportID(error) = %v", err)
	}
	if _, err := readImportID(strings.NewReader(`not json`)); err == nil {
		t.Error("readImportID(garbage) succeeded")
	}
}

// BenchmarkSpool measures what spooling costs per byte of image: copy into the
// spool file, sha512, and reading every byte back through ReadAt.
func BenchmarkSpool(b *testing.B) {
	data := bytes.Repeat([]byte("qcow2-cluster-data"), (64<<20)/18)
	dir := b.TempDir()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sp, err := newSpool(context.Background(), dir, io.NopCloser(bytes.NewReader(data)), int64(len(data)), sha512.New())
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			if _, err := sp.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
				b.Fatal(err)
			}
		}
		if _, err := sp.wait(); err != nil {
			b.Fatal(err)
		}
		sp.Close()
	}
}
