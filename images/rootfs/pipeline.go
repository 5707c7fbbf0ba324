package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ParallelFS is an FS whose content readers may be read concurrently: several readers returned
// by Open, each used by one goroutine, while the walker keeps calling the other methods.
// ParallelReads says how many files are worth reading at once; Write then reads contents ahead
// of the tar writer with that many workers, which hides disk latency and spreads decompression
// over the cores. An FS without it is read sequentially, in the walker's goroutine.
type ParallelFS interface {
	FS
	ParallelReads() int
}

const (
	maxReadWorkers = 8
	// chunkSize is the largest read of file content and the unit handed to the tar writer.
	chunkSize = 256 << 10
	// readAhead bounds the regular files dispatched ahead of the tar writer. Each holds at most
	// two chunks (one queued, one being filled), so content read ahead costs ≤ 32 MiB whatever
	// the image size.
	readAhead = 64
	// queueLen bounds the entries (headers, small contents) queued between walker and writer.
	queueLen = 1024
	// The tar stream reaches w in outBlock writes through a write-behind buffer of outBlocks, so
	// a consumer that reads in bursts (an HTTP body into dockerd) and a reader that stalls on
	// I/O overlap instead of waiting for each other at every header.
	outBlock  = 1 << 20
	outBlocks = 8
)

// errWalkStopped cancels the pipeline when the walker failed: what is queued is not written.
var errWalkStopped = errors.New("rootfs: walk stopped")

// item is one tar entry in walk order: a header, then either inline content or a file whose
// content a reader delivers in chunks.
type item struct {
	hdr  *tar.Header
	data []byte
	file *fileJob
}

type fileJob struct {
	r      io.Reader
	size   int64
	name   string
	chunks chan []byte // closed by the reader; err is valid once closed
	err    error
}

// pipeline runs the stages after the walker: content readers, the tar writer and the
// write-behind buffer. The walker calls entry and file in walk order, then finish once.
type pipeline struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	items   chan item
	work    chan *fileJob
	window  chan struct{} // one token per regular file between dispatch and written
	workers int
	readers sync.WaitGroup
	done    chan struct{} // closed when the tar writer goroutine ended
	tw      *tar.Writer
	out     *blockWriter
	werr    error // the tar writer's first error; read after done
	bufs    bufPool
}

func startPipeline(ctx context.Context, cancel context.CancelCauseFunc, w io.Writer, workers int) *pipeline {
	p := &pipeline{ctx: ctx, cancel: cancel, items: make(chan item, queueLen), window: make(chan struct{}, readAhead),
		workers: workers, done: make(chan struct{}), out: newBlockWriter(w)}
	p.tw = tar.NewWriter(p.out)
	if workers > 0 {
		p.work = make(chan *fileJob, readAhead)
		for range workers {
			p.readers.Add(1)
			go func() {
				defer p.readers.Done()
				for j := range p.work {
					p.read(j)
				}
			}()
		}
	}
	go p.writeTar()
	return p
}

func (p *pipeline) enqueue(it item) error {
	if err := p.ctx.Err(); err != nil {
		return context.Cause(p.ctx)
	}
	select {
	case p.items <- it:
		return nil
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	}
}

// entry queues a header and its (small, not reused) content.
func (p *pipeline) entry(hdr *tar.Header, content []byte) error {
	return p.enqueue(item{hdr: hdr, data: content})
}

// file queues a regular file whose hdr.Size bytes of content come from r, read ahead by a
// worker (or here, without workers) within the read-ahead window.
func (p *pipeline) file(hdr *tar.Header, r io.Reader, name string) error {
	select {
	case p.window <- struct{}{}:
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	}
	j := &fileJob{r: r, size: hdr.Size, name: name, chunks: make(chan []byte, 1)}
	if err := p.enqueue(item{hdr: hdr, file: j}); err != nil {
		<-p.window
		return err
	}
	if p.workers == 0 {
		p.read(j)
		return nil
	}
	// Never blocks: the work queue holds as many jobs as the window lets out.
	p.work <- j
	return nil
}

// read delivers j's content in chunks. Jobs leave the work queue in walk order, so the file the
// tar writer waits for is always in some reader's hands and the pipeline cannot deadlock.
func (p *pipeline) read(j *fileJob) {
	defer close(j.chunks)
	for left := j.size; left > 0; {
		b := p.bufs.get(int(min(left, chunkSize)))
		if _, err := io.ReadFull(j.r, b); err != nil {
			p.bufs.put(b)
			j.err = fmt.Errorf("%s: read content: %w", j.name, err)
			return
		}
		select {
		case j.chunks <- b:
		case <-p.ctx.Done():
			p.bufs.put(b)
			j.err = context.Cause(p.ctx)
			return
		}
		left -= int64(len(b))
	}
}

// writeTar writes the queued entries in order. After the first error it only drains, and the
// error cancels the context so the walker and readers stop.
func (p *pipeline) writeTar() {
	defer close(p.done)
	for it := range p.items {
		if p.werr == nil {
			if p.werr = p.writeItem(it); p.werr != nil {
				p.cancel(p.werr)
			}
		}
		if it.file != nil {
			<-p.window
		}
	}
}

func (p *pipeline) writeItem(it item) error {
	if err := p.tw.WriteHeader(it.hdr); err != nil {
		return fmt.Errorf("write tar header %s: %w", it.hdr.Name, err)
	}
	if len(it.data) > 0 {
		if _, err := p.tw.Write(it.data); err != nil {
			return fmt.Errorf("write tar data: %w", err)
		}
	}
	j := it.file
	if j == nil {
		return nil
	}
	for b := range j.chunks {
		_, err := p.tw.Write(b)
		p.bufs.put(b)
		if err != nil {
			return fmt.Errorf("write tar data: %w", err)
		}
	}
	return j.err
}

// finish ends the pipeline: with complete, the tar is closed and flushed to w; otherwise what
// is still queued is dropped. It returns the bytes written to w and the writer's error.
func (p *pipeline) finish(complete bool) (int64, error) {
	if !complete {
		p.cancel(errWalkStopped)
	}
	close(p.items)
	if p.work != nil {
		close(p.work)
	}
	p.readers.Wait()
	<-p.done
	err := p.werr
	if complete && err == nil {
		if err = p.tw.Close(); err != nil {
			err = fmt.Errorf("finish tar: %w", err)
		}
	}
	n, oerr := p.out.close(complete && err == nil)
	if err == nil && oerr != nil {
		err = fmt.Errorf("write layer: %w", oerr)
	}
	return n, err
}

// blockWriter is a bounded write-behind buffer: Write copies into outBlock-sized blocks that a
// goroutine writes to w, at most outBlocks in memory. After w fails, every Write fails.
type blockWriter struct {
	w     io.Writer
	cur   []byte
	made  int
	full  chan []byte
	free  chan []byte
	done  chan struct{}
	errMu sync.Mutex
	err   error
	n     int64 // bytes written to w; read after done
}

func newBlockWriter(w io.Writer) *blockWriter {
	b := &blockWriter{w: w, full: make(chan []byte, outBlocks), free: make(chan []byte, outBlocks), done: make(chan struct{})}
	go b.drain()
	return b
}

func (b *blockWriter) drain() {
	defer close(b.done)
	var failed bool
	for blk := range b.full {
		if !failed {
			m, err := b.w.Write(blk)
			b.n += int64(m)
			if err != nil {
				failed = true
				b.errMu.Lock()
				b.err = err
				b.errMu.Unlock()
			}
		}
		b.free <- blk[:0]
	}
}

func (b *blockWriter) failed() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.err
}

func (b *blockWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := b.failed(); err != nil {
			return written, err
		}
		if b.cur == nil {
			if b.made < outBlocks {
				b.cur = make([]byte, 0, outBlock)
				b.made++
			} else {
				b.cur = <-b.free
			}
		}
		k := copy(b.cur[len(b.cur):cap(b.cur)], p)
		b.cur = b.cur[:len(b.cur)+k]
		p, written = p[k:], written+k
		if len(b.cur) == cap(b.cur) {
			b.full <- b.cur
			b.cur = nil
		}
	}
	return written, nil
}

// close flushes the partial block when flush is set, waits for the goroutine and returns what
// reached w.
func (b *blockWriter) close(flush bool) (int64, error) {
	if flush && len(b.cur) > 0 {
		b.full <- b.cur
	}
	b.cur = nil
	close(b.full)
	<-b.done
	return b.n, b.err
}

// bufPool recycles content buffers by size class, so 60,000 small files do not mean 60,000
// chunk-sized allocations.
type bufPool struct {
	pools [len(bufClasses)]sync.Pool
}

var bufClasses = [...]int{4 << 10, 32 << 10, chunkSize}

func (bp *bufPool) get(n int) []byte {
	for i, c := range bufClasses {
		if n <= c {
			if v, ok := bp.pools[i].Get().(*[]byte); ok {
				return (*v)[:n]
			}
			return make([]byte, n, c)
		}
	}
	return make([]byte, n)
}

func (bp *bufPool) put(b []byte) {
	for i, c := range bufClasses {
		if cap(b) == c {
			b = b[:c]
			bp.pools[i].Put(&b)
			return
		}
	}
}
