package store_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/store"
	"github.com/nova-container-agent/nova-container-agent/images/store/storetest"
)

// tarConverter is a stand-in for images.Convert whose "disk image" is already a
// tar: it copies it through the io.ReaderAt, so spooling, ranges and errors are
// exercised for real. An input starting with "BROKEN" fails like a bad qcow2.
type tarConverter struct {
	calls atomic.Int32
	gate  chan struct{} // when set, Convert waits for it after reading the header
}

func (c *tarConverter) Convert(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error {
	c.calls.Add(1)
	head := make([]byte, 6)
	if _, err := r.ReadAt(head, 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if string(head) == "BROKEN" {
		return errors.New("qcow2: bad magic")
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Read back to front in 64 KiB ranges, then write in order: random access.
	const chunk = 64 << 10
	buf := make([]byte, size)
	for off := (size - 1) / chunk * chunk; off >= 0; off -= chunk {
		end := min(off+chunk, size)
		if _, err := r.ReadAt(buf[off:end], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read at %d: %w", off, err)
		}
	}
	_, err := w.Write(buf)
	return err
}

type source struct {
	data  []byte
	opens atomic.Int32
	size  int64 // announced; -1 unknown
	trunc int   // when > 0, the body ends after this many bytes
}

func newSource(data []byte) *source { return &source{data: data, size: int64(len(data))} }

func (s *source) open(ctx context.Context) (io.ReadCloser, int64, error) {
	s.opens.Add(1)
	d := s.data
	if s.trunc > 0 {
		d = d[:s.trunc]
	}
	// A slow trickle so conversion really overlaps the download.
	return io.NopCloser(&trickle{r: bytes.NewReader(d), n: 32 << 10}), s.size, nil
}

type trickle struct {
	r io.Reader
	n int
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(p) > t.n {
		p = p[:t.n]
	}
	return t.r.Read(p)
}

func sha(data []byte) store.Checksum {
	return store.Checksum{Algo: "sha512", Value: fmt.Sprintf("%x", sha512.Sum512(data))}
}

const imgID = "5f0a7c1e-1b2d-4c3e-9f40-0123456789ab"

func newStore(t *testing.T, eng store.Engine, conv store.Converter, opt store.Options) *store.Store {
	t.Helper()
	opt.SpoolDir = t.TempDir()
	st, err := store.New(eng, conv, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st
}

func TestEnsureConvertsAndCaches(t *testing.T) {
	ctx := context.Background()
	eng := storetest.NewEngine()
	conv := &tarConverter{}
	data := storetest.MiniRootfs(t, "ensure")
	src := newSource(data)
	st := newStore(t, eng, conv, store.Options{Prefix: "nca-glance"})

	tag, err := st.Ensure(ctx, imgID, sha(data), src.open)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	want := "nca-glance/" + imgID + ":" + sha(data).Value
	if tag != want {
		t.Errorf("tag = %s, want %s", tag, want)
	}
	info, err := eng.InspectImage(ctx, tag)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if info.Labels[store.LabelImageID] != imgID || info.Labels[store.LabelChecksum] != sha(data).String() || info.Labels[store.LabelManaged] != "true" {
		t.Errorf("labels = %v", info.Labels)
	}
	if info.StopSignal != "SIGRTMIN+3" || strings.Join(info.Cmd, " ") != "/sbin/init" {
		t.Errorf("config: stop %q cmd %v", info.StopSignal, info.Cmd)
	}
	hdr, body, ok := eng.File(tag, "usr/bin/sudo")
	if !ok || hdr.Mode&0o4000 == 0 || len(body) != 4096 {
		t.Errorf("usr/bin/sudo in image: ok=%v mode=%o len=%d", ok, hdr.Mode, len(body))
	}

	tag2, err := st.Ensure(ctx, imgID, sha(data), src.open)
	if err != nil || tag2 != tag {
		t.Fatalf("second Ensure = %s, %v", tag2, err)
	}
	if n := conv.calls.Load(); n != 1 {
		t.Errorf("conversions = %d, want 1 (second Ensure must hit the cache)", n)
	}
	if n := src.opens.Load(); n != 1 {
		t.Errorf("downloads = %d, want 1", n)
	}

	// A new Store (agent restart) finds the image through Docker alone.
	st2 := newStore(t, eng, conv, store.Options{Prefix: "nca-glance"})
	if tag3, err := st2.Ensure(ctx, imgID, sha(data), src.open); err != nil || tag3 != tag {
		t.Fatalf("Ensure after restart = %s, %v", tag3, err)
	}
	if n := conv.calls.Load(); n != 1 {
		t.Errorf("conversions after restart = %d, want 1", n)
	}
}

func TestEnsureConcurrentConvertsOnce(t *testing.T) {
	ctx := context.Background()
	eng := storetest.NewEngine()
	conv := &tarConverter{gate: make(chan struct{})}
	data := storetest.MiniRootfs(t, "concurrent")
	src := newSource(data)
	st := newStore(t, eng, conv, store.Options{})

	const n = 20
	tags := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tags[i], errs[i] = st.Ensure(ctx, imgID, sha(data), src.open)
		}()
	}
	// Hold the one conversion until every caller had time to join it.
	time.Sleep(100 * time.Millisecond)
	close(conv.gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || tags[i] != tags[0] {
			t.Errorf("caller %d: %s, %v", i, tags[i], errs[i])
		}
	}
	if c := conv.calls.Load(); c != 1 {
		t.Errorf("conversions = %d, want 1", c)
	}
	if c := src.opens.Load(); c != 1 {
		t.Errorf("downloads = %d, want 1", c)
	}
	if c := eng.Imports(); c != 1 {
		t.Errorf("imports = %d, want 1", c)
	}
}

func TestEnsureChecksumMismatchLeavesNoImage(t *testing.T) {
	ctx := context.Background()
	for _, algo := range []string{"sha512", "md5"} {
		t.Run(algo, func(t *testing.T) {
			eng := storetest.NewEngine()
			data := storetest.MiniRootfs(t, "mismatch")
			sum := sha(data)
			if algo == "md5" {
				sum = store.Checksum{Algo: "md5", Value: fmt.Sprintf("%x", md5.Sum(data))}
			}
			tampered := bytes.Clone(data)
			tampered[len(tampered)-2000] ^= 0xff // inside file data: still a valid tar
			st := newStore(t, eng, &tarConverter{}, store.Options{})
			_, err := st.Ensure(ctx, imgID, sum, newSource(tampered).open)
			if !errors.Is(err, store.ErrChecksumMismatch) {
				t.Fatalf("Ensure = %v, want ErrChecksumMismatch", err)
			}
			var ie *store.ImageError
			if !errors.As(err, &ie) || !strings.Contains(ie.Fault(), "checksum verification") || !strings.Contains(ie.Fault(), imgID) {
				t.Errorf("fault message = %q", ie.Fault())
			}
			if eng.Imports() != 0 {
				t.Errorf("an image was imported from unverified data")
			}
			imgs, _ := eng.ListImages(ctx, store.LabelManaged, "true")
			if len(imgs) != 0 {
				t.Errorf("images after mismatch: %+v", imgs)
			}
		})
	}
}

func TestEnsureErrors(t *testing.T) {
	ctx := context.Background()
	data := storetest.MiniRootfs(t, "errors")
	broken := append([]byte("BROKEN"), data...)

	cases := []struct {
		name string
		id   string
		sum  store.Checksum
		src  func() *source
		want error
	}{
		{"broken image", imgID, sha(broken), func() *source { return newSource(broken) }, store.ErrBrokenImage},
		{"truncated download", imgID, sha(data), func() *source { s := newSource(data); s.trunc = len(data) / 3; return s }, store.ErrDownload},
		{"bad checksum hex", imgID, store.Checksum{Algo: "sha512", Value: "xyz"}, func() *source { return newSource(data) }, store.ErrInvalid},
		{"unknown algorithm", imgID, store.Checksum{Algo: "crc32", Value: "00000000"}, func() *source { return newSource(data) }, store.ErrInvalid},
		{"bad image id", "../../etc", sha(data), func() *source { return newSource(data) }, store.ErrInvalid},
		{"unknown size", imgID, sha(data), func() *source { s := newSource(data); s.size = -1; return s }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eng := storetest.NewEngine()
			st := newStore(t, eng, &tarConverter{}, store.Options{})
			_, err := st.Ensure(ctx, tc.id, tc.sum, tc.src().open)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Ensure = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Ensure = %v, want %v", err, tc.want)
			}
			var ie *store.ImageError
			if !errors.As(err, &ie) || ie.Fault() == "" {
				t.Errorf("error %v is not an *ImageError with a fault message", err)
			}
			if eng.Imports() != 0 {
				t.Errorf("imports = %d after a failure", eng.Imports())
			}
		})
	}
}

func TestEnsureOpenFailure(t *testing.T) {
	st := newStore(t, storetest.NewEngine(), &tarConverter{}, store.Options{})
	data := storetest.MiniRootfs(t, "x")
	_, err := st.Ensure(context.Background(), imgID, sha(data), func(context.Context) (io.ReadCloser, int64, error) {
		return nil, 0, errors.New("glance: 503 Service Unavailable")
	})
	if !errors.Is(err, store.ErrDownload) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Ensure = %v, want ErrDownload wrapping the cause", err)
	}
}

func TestEnsureCancelledByLastWaiter(t *testing.T) {
	eng := storetest.NewEngine()
	conv := &tarConverter{gate: make(chan struct{})} // never opened
	data := storetest.MiniRootfs(t, "cancel")
	st := newStore(t, eng, conv, store.Options{})
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := st.Ensure(ctx1, imgID, sha(data), newSource(data).open); errs <- err }()
	go func() { _, err := st.Ensure(ctx2, imgID, sha(data), newSource(data).open); errs <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first waiter = %v, want context.Canceled", err)
	}
	cancel2()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("second waiter = %v, want context.Canceled", err)
	}
	// The conversion itself must stop: a new Ensure starts a fresh one that
	// succeeds once the gate opens.
	close(conv.gate)
	if _, err := st.Ensure(context.Background(), imgID, sha(data), newSource(data).open); err != nil {
		t.Fatalf("Ensure after cancellation: %v", err)
	}
	if eng.Imports() != 1 {
		t.Errorf("imports = %d, want 1", eng.Imports())
	}
}

func TestTag(t *testing.T) {
	st := newStore(t, storetest.NewEngine(), &tarConverter{}, store.Options{Prefix: "reg/nca"})
	sum := sha([]byte("x"))
	tag, err := st.Tag(imgID, sum)
	if err != nil || tag != "reg/nca/"+imgID+":"+sum.Value || len(sum.Value) != 128 {
		t.Errorf("Tag = %s, %v", tag, err)
	}
	if _, err := store.New(storetest.NewEngine(), &tarConverter{}, store.Options{Prefix: "Bad Prefix"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("New with bad prefix = %v, want ErrInvalid", err)
	}
}

func TestFromGlance(t *testing.T) {
	c, err := store.FromGlance("SHA512", strings.Repeat("AB", 64), "")
	if err != nil || c.Algo != "sha512" || c.Value != strings.Repeat("ab", 64) {
		t.Errorf("FromGlance(sha512) = %+v, %v", c, err)
	}
	c, err = store.FromGlance("", "", strings.Repeat("0", 32))
	if err != nil || c.Algo != "md5" {
		t.Errorf("FromGlance(md5) = %+v, %v", c, err)
	}
	if _, err := store.FromGlance("", "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("FromGlance(nothing) = %v, want ErrInvalid", err)
	}
}
