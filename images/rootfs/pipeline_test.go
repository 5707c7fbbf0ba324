package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// memFS is an in-memory tree: one root directory of regular files, some of which fail to read.
// With parallel set it is a ParallelFS.
type memFS struct {
	names   []string
	content map[string][]byte
	failAt  map[string]int // name → content offset where the reader fails
	mtime   time.Time
}

type parallelMemFS struct{ *memFS }

func (p parallelMemFS) ParallelReads() int { return 4 }

var _ ParallelFS = parallelMemFS{}

func newMemFS(files int) *memFS {
	m := &memFS{content: map[string][]byte{}, failAt: map[string]int{}, mtime: time.Unix(1700000000, 0)}
	for i := range files {
		name := fmt.Sprintf("f%04d", i)
		// Sizes from empty to several chunks, content depending on name and offset.
		size := (i * 7919) % (3*chunkSize + 1000)
		if i%5 == 0 {
			size = i % 300
		}
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(i*31 + k/7)
		}
		m.names = append(m.names, name)
		m.content[name] = b
	}
	return m
}

func (m *memFS) Root() (Node, error) { return m.Stat(1) }

func (m *memFS) Stat(ino uint64) (Node, error) {
	if ino == 1 {
		return Node{Ino: 1, Mode: TypeDir | 0o755, Links: 2, Mtime: m.mtime}, nil
	}
	if ino < 2 || int(ino-2) >= len(m.names) {
		return Node{}, fmt.Errorf("no inode %d", ino)
	}
	name := m.names[ino-2]
	return Node{Ino: ino, Mode: TypeRegular | 0o644, Links: 1, Size: int64(len(m.content[name])), Mtime: m.mtime, Sys: name}, nil
}

func (m *memFS) ReadDir(n Node, fn func(string, uint64) error) error {
	for i, name := range m.names {
		if err := fn(name, uint64(i+2)); err != nil {
			return err
		}
	}
	return nil
}

type failingReader struct {
	r    io.Reader
	left int
}

var errDisk = errors.New("simulated disk error")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errDisk
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

func (m *memFS) Open(n Node) (io.Reader, error) {
	name := n.Sys.(string)
	r := io.Reader(bytes.NewReader(m.content[name]))
	if at, ok := m.failAt[name]; ok {
		r = &failingReader{r: r, left: at}
	}
	return r, nil
}

func (m *memFS) Readlink(Node) (string, error)          { return "", errors.New("no symlinks") }
func (m *memFS) Xattrs(Node) ([]Xattr, error)           { return nil, nil }
func (m *memFS) ReadFile(string, int64) ([]byte, error) { return nil, errors.New("not found") }
func (m *memFS) Lookup(string) (Node, error)            { return Node{}, errors.New("not found") }
func (m *memFS) Size() int64                            { return 1 << 40 }
func (m *memFS) check(t *testing.T, layer []byte, st *Stats) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(layer))
	var got []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			name := strings.TrimPrefix(h.Name, "./")
			if !bytes.Equal(b, m.content[name]) {
				t.Fatalf("%s: content differs (%d bytes, want %d)", name, len(b), len(m.content[name]))
			}
			got = append(got, name)
		}
	}
	if strings.Join(got, ",") != strings.Join(m.names, ",") {
		t.Fatalf("files out of walk order or missing: %d of %d", len(got), len(m.names))
	}
	if st.TarBytes != int64(len(layer)) {
		t.Errorf("TarBytes %d, layer %d bytes", st.TarBytes, len(layer))
	}
}

// TestWriteOrderAndContent: with and without read-ahead workers, every file arrives whole and
// in walk order, although several are read at once.
func TestWriteOrderAndContent(t *testing.T) {
	m := newMemFS(300)
	for _, fsys := range []FS{m, parallelMemFS{m}} {
		var out bytes.Buffer
		st, err := Write(context.Background(), fsys, &out, NoAdaptation())
		if err != nil {
			t.Fatalf("%T: %v", fsys, err)
		}
		m.check(t, out.Bytes(), st)
		if st.Files != int64(len(m.names)) {
			t.Errorf("%T: %d files, want %d", fsys, st.Files, len(m.names))
		}
	}
}

// TestWriteReadError: a reader failing in the middle of a file ends Write with that error,
// naming the file, without a hang, whichever worker held the file.
func TestWriteReadError(t *testing.T) {
	for _, fail := range []string{"f0001", "f0150", "f0299"} {
		m := newMemFS(300)
		m.failAt[fail] = len(m.content[fail]) / 2
		for _, fsys := range []FS{m, parallelMemFS{m}} {
			_, err := Write(context.Background(), fsys, io.Discard, NoAdaptation())
			if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), fail) {
				t.Errorf("%T, failing %s: got %v", fsys, fail, err)
			}
		}
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.left < len(p) {
		n := max(w.left, 0)
		w.left = 0
		return n, io.ErrClosedPipe
	}
	w.left -= len(p)
	return len(p), nil
}

// TestWriteConsumerFails: when the consumer stops (docker import died), Write returns its error
// and the readers stop.
func TestWriteConsumerFails(t *testing.T) {
	m := newMemFS(300)
	for _, fsys := range []FS{m, parallelMemFS{m}} {
		_, err := Write(context.Background(), fsys, &failingWriter{left: 3 << 20}, NoAdaptation())
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("%T: got %v, want the writer's error", fsys, err)
		}
	}
}

// TestWriteCancelled: a cancelled context ends Write with the context's error.
func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Write(ctx, parallelMemFS{newMemFS(50)}, io.Discard, NoAdaptation())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
