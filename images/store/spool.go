package store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
)

// spool copies a sequential download into an unlinked temporary file and serves
// io.ReaderAt on it while the download is still running: a ReadAt blocks until the
// bytes it asks for have arrived. The converter therefore starts on the qcow2
// header and L1/L2 tables as soon as they are on disk, and download, hashing and
// conversion overlap. The file holds the image as Glance serves it (a qcow2 keeps
// its compressed clusters and holes), never an expanded raw disk.
type spool struct {
	f    *os.File
	body io.Closer
	want int64 // expected size, -1 when unknown
	h    hash.Hash

	mu   sync.Mutex
	cond *sync.Cond
	n    int64 // bytes on disk
	done bool
	err  error // sticky: download failure or cancellation
}

// newSpool creates the backing file in dir (unlinked at once, so a crash leaves
// nothing behind) and starts copying body into it. Close releases the file.
func newSpool(ctx context.Context, dir string, body io.ReadCloser, size int64, h hash.Hash) (*spool, error) {
	f, err := os.CreateTemp(dir, "nca-spool-*")
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("create spool file in %s: %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		body.Close()
		return nil, fmt.Errorf("unlink spool file %s: %w", f.Name(), err)
	}
	s := &spool{f: f, body: body, want: size, h: h}
	s.cond = sync.NewCond(&s.mu)
	// Cancellation fails pending reads at once and closes the body, which
	// unblocks a Read stuck on a stalled connection.
	stop := context.AfterFunc(ctx, func() { s.finish(ctx.Err()); body.Close() })
	go func() {
		defer stop()
		defer body.Close()
		s.finish(s.fill(body))
	}()
	return s, nil
}

// fill copies body to the file and the hash; each chunk becomes readable at once.
func (s *spool) fill(body io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := s.f.WriteAt(buf[:n], s.size()); err != nil {
				return fmt.Errorf("write spool file: %w", err)
			}
			s.h.Write(buf[:n])
			s.mu.Lock()
			s.n += int64(n)
			over := s.want >= 0 && s.n > s.want
			s.mu.Unlock()
			s.cond.Broadcast()
			if over {
				return fmt.Errorf("%w: source sent more than the announced %d bytes", ErrDownload, s.want)
			}
		}
		if errors.Is(rerr, io.EOF) {
			if s.want >= 0 && s.size() != s.want {
				return fmt.Errorf("%w: got %d of %d bytes", ErrDownload, s.size(), s.want)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%w: after %d bytes: %w", ErrDownload, s.size(), rerr)
		}
	}
}

func (s *spool) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// finish records the end of the download; only the first call counts.
func (s *spool) finish(err error) {
	s.mu.Lock()
	if !s.done {
		s.done, s.err = true, err
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// ReadAt implements io.ReaderAt, waiting for the download to reach off+len(p).
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("spool read at %d: negative offset", off)
	}
	end := off + int64(len(p))
	s.mu.Lock()
	for s.n < end && !s.done {
		s.cond.Wait()
	}
	n, done, err := s.n, s.done, s.err
	s.mu.Unlock()
	if n < end && done && err != nil {
		return 0, err
	}
	avail := min(int64(len(p)), max(n-off, 0))
	m, rerr := s.f.ReadAt(p[:avail], off)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return m, fmt.Errorf("read spool file: %w", rerr)
	}
	if int64(m) < int64(len(p)) {
		return m, io.EOF
	}
	return m, nil
}

// wait blocks until the download ended and returns its size and error.
func (s *spool) wait() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.done {
		s.cond.Wait()
	}
	return s.n, s.err
}

// Close stops the download if it still runs and releases the file.
func (s *spool) Close() error {
	s.finish(errors.New("spool closed"))
	s.body.Close()
	return s.f.Close()
}
