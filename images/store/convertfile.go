package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// FileOptions configure ConvertFile.
type FileOptions struct {
	// Progress receives progress output; nil disables it.
	Progress io.Writer
	// TTY selects a single self-overwriting status line (with rate and ETA)
	// instead of one plain line every Interval.
	TTY bool
	// Interval between updates; default 1 s on a TTY, 5 s otherwise.
	Interval time.Duration
	// Labels are added to the image's labels.
	Labels map[string]string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// FileResult describes a finished ConvertFile.
type FileResult struct {
	// ImageID is the engine's id of the new image.
	ImageID string
	// Read is the number of bytes the converter read from the file.
	Read int64
	// Written is the size of the tar stream sent to the engine.
	Written int64
	// Elapsed is the wall time from open to tagged image.
	Elapsed time.Duration
}

// ConvertFile converts a local disk image file and imports it as tag: the logic
// behind `nova-container-agent image convert FILE --tag NAME`. Unlike Ensure it
// bypasses the cache: the operator asked for this tag explicitly.
func ConvertFile(ctx context.Context, eng Engine, conv Converter, path, tag string, opt FileOptions) (FileResult, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	start := opt.Now()
	f, err := os.Open(path)
	if err != nil {
		return FileResult{}, fmt.Errorf("open image file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return FileResult{}, fmt.Errorf("stat image file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return FileResult{}, fmt.Errorf("image file %s: %w: not a regular file", path, ErrInvalid)
	}
	cfg := DefaultConfig()
	cfg.Labels = map[string]string{LabelSource: "file"}
	for k, v := range opt.Labels {
		cfg.Labels[k] = v
	}
	cr := &countingReaderAt{r: f}
	cw := &countingWriter{}
	pr, pw := io.Pipe()
	imported := make(chan struct {
		id  string
		err error
	}, 1)
	go func() {
		id, err := eng.ImportImage(ctx, pr, tag, cfg)
		imported <- struct {
			id  string
			err error
		}{id, err}
		pr.CloseWithError(fmt.Errorf("%w: %w", errImportEnded, errOr(err, io.ErrClosedPipe)))
	}()
	var stop func()
	if opt.Progress != nil {
		p := &progress{out: opt.Progress, tty: opt.TTY, total: st.Size(), start: start, now: opt.Now, read: &cr.n, written: &cw.n}
		stop = p.run(opt.Interval)
	}
	cw.w = pw
	convErr := conv.Convert(ctx, cr, st.Size(), cw)
	if convErr != nil {
		pw.CloseWithError(convErr)
	} else {
		pw.Close()
	}
	r := <-imported
	if stop != nil {
		stop()
	}
	res := FileResult{ImageID: r.id, Read: cr.n.Load(), Written: cw.n.Load(), Elapsed: opt.Now().Sub(start)}
	switch {
	case r.err != nil && (convErr == nil || errors.Is(convErr, errImportEnded)):
		// The converter only failed because the engine stopped reading.
		return res, fmt.Errorf("import %s as %s: %w", path, tag, r.err)
	case convErr != nil:
		return res, fmt.Errorf("convert %s: %w: %w", path, ErrBrokenImage, convErr)
	}
	return res, nil
}

type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// progress prints conversion progress. The converter reads most of a qcow2 file
// once (metadata and every allocated cluster of the root partition), so bytes
// read over file size is a fair completion estimate; it is capped below 100 %
// because some clusters may be read twice and others (/boot) not at all.
type progress struct {
	out           io.Writer
	tty           bool
	total         int64
	start         time.Time
	now           func() time.Time
	read, written *atomic.Int64
}

func (p *progress) run(every time.Duration) (stop func()) {
	if every <= 0 {
		every = 5 * time.Second
		if p.tty {
			every = time.Second
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.print(false)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.print(true)
	}
}

func (p *progress) print(final bool) {
	line := formatProgress(p.read.Load(), p.written.Load(), p.total, p.now().Sub(p.start), final, p.tty)
	if p.tty {
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(p.out, "\r\033[K%s%s", line, end)
		return
	}
	fmt.Fprintln(p.out, line)
}

// formatProgress renders one status line. It is pure so it can be tested.
func formatProgress(read, written, total int64, elapsed time.Duration, final, tty bool) string {
	secs := elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(read) / secs / 1e6
	}
	line := fmt.Sprintf("read %s of %s, tar %s, %.1f MB/s, %s", mb(read), mb(total), mb(written), rate, elapsed.Round(100*time.Millisecond))
	if final {
		return "done: " + line
	}
	if tty && total > 0 && read > 0 {
		pct := min(float64(read)/float64(total), 0.99)
		remain := time.Duration(secs * (1 - pct) / pct * float64(time.Second))
		line = fmt.Sprintf("%3.0f%% %s, ETA %s", pct*100, line, remain.Round(time.Second))
	}
	return line
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
