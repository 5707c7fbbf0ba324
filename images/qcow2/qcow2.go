package qcow2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// ErrCorrupt marks an image whose metadata is inconsistent: an offset past the end of the file,
// a misaligned table, a compressed cluster that does not inflate to exactly one cluster.
var ErrCorrupt = errors.New("qcow2: corrupt image")

// ErrUnsupported marks a valid image using a feature this reader refuses to guess at.
var ErrUnsupported = errors.New("qcow2: unsupported image")

// ErrNotQCOW2 is returned by Open when the input does not start with the QCOW2 magic.
var ErrNotQCOW2 = errors.New("qcow2: not a qcow2 image")

const (
	magic = 0x514649fb // "QFI\xfb"

	// maxL1Bytes is qemu's QCOW_MAX_L1_SIZE: it bounds what a header can make us allocate, and
	// rejects absurd virtual sizes (1 EiB needs a 16 GiB L1 table with 64 KiB clusters).
	maxL1Bytes = 32 << 20
	// maxBackingDepth bounds backing chains so a chain that loops (a → b → a) ends with an error.
	maxBackingDepth = 16

	l1OffsetMask = 0x00fffffffffffe00
	l2OffsetMask = 0x00fffffffffffe00
	l2Compressed = 1 << 62
	l2ZeroFlag   = 1

	incompatDirty      = 1 << 0
	incompatCorrupt    = 1 << 1
	incompatDataFile   = 1 << 2
	incompatCompType   = 1 << 3
	incompatExtendedL2 = 1 << 4

	compressionZlib = 0
	compressionZstd = 1
)

// Opener opens a backing file named in an image header. It decides which names are acceptable
// (see DirOpener); Open never touches the host filesystem by itself.
type Opener func(ctx context.Context, name string) (r io.ReaderAt, size int64, closer io.Closer, err error)

// Option tunes Open.
type Option func(*config)

type config struct {
	opener     Opener
	cacheBytes int64
	workers    int
	depth      int
}

// WithBackingOpener lets Open follow a backing file chain; without it an image with a backing
// file is refused with ErrUnsupported.
func WithBackingOpener(o Opener) Option { return func(c *config) { c.opener = o } }

// WithCacheBytes sets the memory budget of the decompressed-cluster cache (default 32 MiB).
func WithCacheBytes(n int64) Option { return func(c *config) { c.cacheBytes = n } }

// WithWorkers sets how many clusters are inflated concurrently (default GOMAXPROCS).
func WithWorkers(n int) Option { return func(c *config) { c.workers = n } }

func withDepth(d int) Option { return func(c *config) { c.depth = d } }

// Info describes an opened image.
type Info struct {
	Version     uint32
	ClusterSize int64
	VirtualSize int64
	Compression string // "zlib" or "zstd"
	BackingFile string
	Dirty       bool
}

// Image is the virtual disk of a QCOW2 file. It is safe for concurrent ReadAt calls.
type Image struct {
	r           io.ReaderAt
	fileSize    int64
	info        Info
	clusterBits uint
	clusterSize int64
	l2Bits      uint
	l1          []uint64
	compType    uint8
	v3          bool

	backing     io.ReaderAt
	backingSize int64
	closers     []io.Closer

	workers int

	mu       sync.Mutex
	l2cache  *lru[[]uint64]
	ccache   *lru[[]byte]
	inflight map[int64]*call

	decoders sync.Pool // *decoder

	prefetch chan int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

type call struct {
	done chan struct{}
	buf  []byte
	err  error
}

// IsQCOW2 reports whether r starts with the QCOW2 magic.
func IsQCOW2(r io.ReaderAt) bool {
	var b [4]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return false
	}
	return binary.BigEndian.Uint32(b[:]) == magic
}

// Open parses the header and L1 table of the QCOW2 image in r (size bytes long).
func Open(ctx context.Context, r io.ReaderAt, size int64, opts ...Option) (*Image, error) {
	cfg := config{cacheBytes: 32 << 20, workers: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.workers < 1 {
		cfg.workers = 1
	}
	var h [112]byte
	n, err := r.ReadAt(h[:], 0)
	if n < 72 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read header: %w", ErrNotQCOW2)
		}
		return nil, fmt.Errorf("read qcow2 header: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(h[0:]) != magic {
		return nil, ErrNotQCOW2
	}
	img := &Image{r: r, fileSize: size, workers: cfg.workers, inflight: map[int64]*call{}}
	img.info.Version = be.Uint32(h[4:])
	switch img.info.Version {
	case 2:
	case 3:
		img.v3 = true
		if n < 104 {
			return nil, fmt.Errorf("qcow2 v3 header truncated: %w", ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("qcow2 version %d: %w", img.info.Version, ErrUnsupported)
	}
	backingOff := be.Uint64(h[8:])
	backingLen := be.Uint32(h[16:])
	img.clusterBits = uint(be.Uint32(h[20:]))
	if img.clusterBits < 9 || img.clusterBits > 21 {
		return nil, fmt.Errorf("cluster_bits %d out of range 9..21: %w", img.clusterBits, ErrCorrupt)
	}
	img.clusterSize = 1 << img.clusterBits
	img.l2Bits = img.clusterBits - 3
	img.info.ClusterSize = img.clusterSize
	vsize := be.Uint64(h[24:])
	if vsize > 1<<62 {
		return nil, fmt.Errorf("virtual size %d: %w", vsize, ErrCorrupt)
	}
	img.info.VirtualSize = int64(vsize)
	if crypt := be.Uint32(h[32:]); crypt != 0 {
		return nil, fmt.Errorf("image is encrypted (crypt_method %d): %w", crypt, ErrUnsupported)
	}
	l1Size := uint64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	img.info.Compression = "zlib"
	if img.v3 {
		incompat := be.Uint64(h[72:])
		if incompat&incompatDataFile != 0 {
			return nil, fmt.Errorf("image uses an external data file: %w", ErrUnsupported)
		}
		if incompat&incompatExtendedL2 != 0 {
			return nil, fmt.Errorf("image uses extended L2 entries (subclusters): %w", ErrUnsupported)
		}
		known := uint64(incompatDirty | incompatCorrupt | incompatCompType)
		if unknown := incompat &^ known; unknown != 0 {
			return nil, fmt.Errorf("unknown incompatible features %#x: %w", unknown, ErrUnsupported)
		}
		img.info.Dirty = incompat&incompatDirty != 0
		hdrLen := be.Uint32(h[100:])
		if incompat&incompatCompType != 0 {
			if hdrLen < 105 || n < 105 {
				return nil, fmt.Errorf("compression type bit set but header too short: %w", ErrCorrupt)
			}
			img.compType = h[104]
		}
		switch img.compType {
		case compressionZlib:
		case compressionZstd:
			img.info.Compression = "zstd"
		default:
			return nil, fmt.Errorf("compression type %d: %w", img.compType, ErrUnsupported)
		}
	}

	// Whole virtual disk must be addressable by the L1 table, and the table must fit in the file.
	perL1 := uint64(img.clusterSize) << img.l2Bits // bytes mapped by one L1 entry
	need := (vsize + perL1 - 1) / perL1
	if l1Size < need {
		return nil, fmt.Errorf("l1_size %d too small for virtual size %d: %w", l1Size, vsize, ErrCorrupt)
	}
	if need*8 > maxL1Bytes {
		return nil, fmt.Errorf("virtual size %d needs an L1 table over %d bytes: %w", vsize, maxL1Bytes, ErrUnsupported)
	}
	if l1Off%8 != 0 || l1Off+need*8 > uint64(size) {
		return nil, fmt.Errorf("L1 table at %d (%d entries) outside the %d-byte file: %w", l1Off, need, size, ErrCorrupt)
	}
	raw := make([]byte, need*8)
	if _, err := r.ReadAt(raw, int64(l1Off)); err != nil {
		return nil, fmt.Errorf("read L1 table: %w", err)
	}
	img.l1 = make([]uint64, need)
	for i := range img.l1 {
		img.l1[i] = be.Uint64(raw[i*8:])
	}

	if backingOff != 0 && backingLen != 0 {
		if backingLen > 1023 || backingOff+uint64(backingLen) > uint64(size) {
			return nil, fmt.Errorf("backing file name (%d bytes at %d): %w", backingLen, backingOff, ErrCorrupt)
		}
		name := make([]byte, backingLen)
		if _, err := r.ReadAt(name, int64(backingOff)); err != nil {
			return nil, fmt.Errorf("read backing file name: %w", err)
		}
		img.info.BackingFile = string(name)
		if err := img.openBacking(ctx, cfg); err != nil {
			img.Close()
			return nil, err
		}
	}

	l2Budget := int64(16 << 20)
	img.l2cache = newLRU[[]uint64](int(max(4, l2Budget/img.clusterSize)))
	img.ccache = newLRU[[]byte](int(max(8, cfg.cacheBytes/img.clusterSize)))
	if img.workers > 1 {
		img.prefetch = make(chan int64, 4*img.workers)
		img.stop = make(chan struct{})
		for range img.workers {
			img.wg.Add(1)
			go img.prefetcher()
		}
	}
	return img, nil
}

func (img *Image) openBacking(ctx context.Context, cfg config) error {
	if cfg.opener == nil {
		return fmt.Errorf("image has backing file %q and no backing opener was given: %w", img.info.BackingFile, ErrUnsupported)
	}
	if cfg.depth+1 >= maxBackingDepth {
		return fmt.Errorf("backing chain deeper than %d (loop?): %w", maxBackingDepth, ErrCorrupt)
	}
	br, bsize, closer, err := cfg.opener(ctx, img.info.BackingFile)
	if err != nil {
		return fmt.Errorf("open backing file %q: %w", img.info.BackingFile, err)
	}
	if closer != nil {
		img.closers = append(img.closers, closer)
	}
	if IsQCOW2(br) {
		sub := cfg
		sub.depth++
		bimg, err := Open(ctx, br, bsize, WithBackingOpener(sub.opener), WithCacheBytes(sub.cacheBytes/2),
			WithWorkers(sub.workers), withDepth(sub.depth))
		if err != nil {
			return fmt.Errorf("backing file %q: %w", img.info.BackingFile, err)
		}
		img.closers = append(img.closers, bimg)
		img.backing, img.backingSize = bimg, bimg.Size()
		return nil
	}
	img.backing, img.backingSize = br, bsize
	return nil
}

// Info returns what the header says.
func (img *Image) Info() Info { return img.info }

// Size is the virtual disk size in bytes.
func (img *Image) Size() int64 { return img.info.VirtualSize }

// Close stops the read-ahead workers and closes backing files opened through the Opener.
func (img *Image) Close() error {
	if img.stop != nil {
		close(img.stop)
		img.wg.Wait()
		img.stop = nil
	}
	var errs []error
	for _, c := range img.closers {
		errs = append(errs, c.Close())
	}
	img.closers = nil
	return errors.Join(errs...)
}

type segKind uint8

const (
	segZero segKind = iota
	segBacking
	segData
	segCompressed
)

type seg struct {
	kind  segKind
	dst   []byte
	voff  int64 // virtual offset of dst[0]
	host  int64 // host offset of dst[0] (data) or of the compressed stream
	clen  int64 // compressed length
	inOff int64 // offset of dst[0] within the cluster (compressed)
}

// ReadAt reads the virtual disk. Unallocated clusters read as the backing file or zeros.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("qcow2: negative offset %d", off)
	}
	if off >= img.info.VirtualSize {
		return 0, io.EOF
	}
	var eof error
	if rem := img.info.VirtualSize - off; int64(len(p)) > rem {
		p, eof = p[:rem], io.EOF
	}
	segs := make([]seg, 0, len(p)/int(img.clusterSize)+2)
	for done := 0; done < len(p); {
		voff := off + int64(done)
		inCl := voff & (img.clusterSize - 1)
		n := min(int64(len(p)-done), img.clusterSize-inCl)
		s, err := img.classify(voff, inCl)
		if err != nil {
			return 0, err
		}
		s.dst = p[done : done+int(n)]
		s.voff = voff
		// Coalesce runs of contiguous host data into one read.
		if k := len(segs) - 1; k >= 0 && segs[k].kind == s.kind && (s.kind == segZero || s.kind == segBacking ||
			(s.kind == segData && segs[k].host+int64(len(segs[k].dst)) == s.host)) {
			segs[k].dst = p[done-len(segs[k].dst) : done+int(n)]
		} else {
			segs = append(segs, s)
		}
		done += int(n)
	}
	var compressed []int
	for i := range segs {
		s := &segs[i]
		switch s.kind {
		case segZero:
			clear(s.dst)
		case segBacking:
			if err := img.readBacking(s.dst, s.voff); err != nil {
				return 0, err
			}
		case segData:
			// A last cluster cut short by the end of the file reads as zeros past it, as in qemu.
			if n, err := img.r.ReadAt(s.dst, s.host); err != nil {
				if !errors.Is(err, io.EOF) {
					return 0, fmt.Errorf("read cluster data at %d: %w", s.host, err)
				}
				clear(s.dst[n:])
			}
		case segCompressed:
			compressed = append(compressed, i)
		}
	}
	if err := img.readCompressed(segs, compressed); err != nil {
		return 0, err
	}
	return len(p), eof
}

func (img *Image) readBacking(dst []byte, voff int64) error {
	if img.backing == nil || voff >= img.backingSize {
		clear(dst)
		return nil
	}
	n := min(int64(len(dst)), img.backingSize-voff)
	if _, err := img.backing.ReadAt(dst[:n], voff); err != nil && !(errors.Is(err, io.EOF) && n == int64(len(dst[:n]))) {
		return fmt.Errorf("read backing file at %d: %w", voff, err)
	}
	clear(dst[n:])
	return nil
}

// classify maps the virtual offset to where its bytes come from.
func (img *Image) classify(voff, inCl int64) (seg, error) {
	vcl := uint64(voff) >> img.clusterBits
	l1i := vcl >> img.l2Bits
	l2i := vcl & (1<<img.l2Bits - 1)
	l2, err := img.l2Table(l1i)
	if err != nil {
		return seg{}, err
	}
	if l2 == nil {
		return seg{kind: segBacking}, nil
	}
	e := l2[l2i]
	if e&l2Compressed != 0 {
		shift := 62 - (img.clusterBits - 8)
		host := int64(e & (1<<shift - 1))
		nsect := int64(e>>shift) & (1<<(img.clusterBits-8) - 1)
		clen := (nsect+1)*512 - host&511
		if host <= 0 || host >= img.fileSize {
			return seg{}, fmt.Errorf("compressed cluster for virtual offset %d at %d beyond file end %d: %w", voff, host, img.fileSize, ErrCorrupt)
		}
		clen = min(clen, img.fileSize-host)
		return seg{kind: segCompressed, host: host, clen: clen, inOff: inCl}, nil
	}
	host := int64(e & l2OffsetMask)
	if img.v3 && e&l2ZeroFlag != 0 {
		return seg{kind: segZero}, nil
	}
	if host == 0 {
		return seg{kind: segBacking}, nil
	}
	if host%img.clusterSize != 0 || host >= img.fileSize {
		return seg{}, fmt.Errorf("data cluster for virtual offset %d at %d (file %d bytes): %w", voff, host, img.fileSize, ErrCorrupt)
	}
	return seg{kind: segData, host: host + inCl}, nil
}

// l2Table returns the L2 table of L1 entry i, or nil when it is unallocated.
func (img *Image) l2Table(i uint64) ([]uint64, error) {
	e := img.l1[i]
	off := int64(e & l1OffsetMask)
	if off == 0 {
		return nil, nil
	}
	img.mu.Lock()
	t, ok := img.l2cache.get(off)
	img.mu.Unlock()
	if ok {
		return t, nil
	}
	if off%img.clusterSize != 0 || off+img.clusterSize > img.fileSize {
		return nil, fmt.Errorf("L2 table %d at %d (file %d bytes): %w", i, off, img.fileSize, ErrCorrupt)
	}
	raw := make([]byte, img.clusterSize)
	if _, err := img.r.ReadAt(raw, off); err != nil {
		return nil, fmt.Errorf("read L2 table at %d: %w", off, err)
	}
	t = make([]uint64, img.clusterSize/8)
	for k := range t {
		t[k] = binary.BigEndian.Uint64(raw[k*8:])
	}
	img.mu.Lock()
	img.l2cache.put(off, t)
	img.mu.Unlock()
	return t, nil
}

// readCompressed fills the compressed segments, inflating uncached clusters concurrently.
func (img *Image) readCompressed(segs []seg, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	if len(idx) == 1 || img.workers == 1 {
		for _, i := range idx {
			if err := img.fillCompressed(&segs[i]); err != nil {
				return err
			}
		}
		img.schedulePrefetch(segs[idx[len(idx)-1]].voff)
		return nil
	}
	sem := make(chan struct{}, img.workers)
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[k] = img.fillCompressed(&segs[i])
		}()
	}
	wg.Wait()
	img.schedulePrefetch(segs[idx[len(idx)-1]].voff)
	return errors.Join(errs...)
}

func (img *Image) fillCompressed(s *seg) error {
	buf, err := img.cluster(s.host, s.clen)
	if err != nil {
		return err
	}
	copy(s.dst, buf[s.inOff:])
	return nil
}

// schedulePrefetch asks the background workers to inflate the clusters following voff, so the
// next sequential read finds them ready while this goroutine is busy elsewhere.
func (img *Image) schedulePrefetch(voff int64) {
	if img.prefetch == nil {
		return
	}
	base := voff &^ (img.clusterSize - 1)
	for k := int64(1); k <= int64(2*img.workers); k++ {
		v := base + k*img.clusterSize
		if v >= img.info.VirtualSize {
			return
		}
		select {
		case img.prefetch <- v:
		default:
			return
		}
	}
}

func (img *Image) prefetcher() {
	defer img.wg.Done()
	for {
		select {
		case <-img.stop:
			return
		case v := <-img.prefetch:
			s, err := img.classify(v, 0)
			if err != nil || s.kind != segCompressed {
				continue
			}
			img.mu.Lock()
			_, cached := img.ccache.get(s.host)
			_, busy := img.inflight[s.host]
			img.mu.Unlock()
			if !cached && !busy {
				_, _ = img.cluster(s.host, s.clen) // errors resurface on the real read
			}
		}
	}
}

// cluster returns the inflated cluster whose compressed stream starts at host, from the cache,
// from a concurrent inflation of the same cluster, or by inflating it now.
func (img *Image) cluster(host, clen int64) ([]byte, error) {
	img.mu.Lock()
	if b, ok := img.ccache.get(host); ok {
		img.mu.Unlock()
		return b, nil
	}
	if c, ok := img.inflight[host]; ok {
		img.mu.Unlock()
		<-c.done
		return c.buf, c.err
	}
	c := &call{done: make(chan struct{})}
	img.inflight[host] = c
	img.mu.Unlock()

	c.buf, c.err = img.inflate(host, clen)

	img.mu.Lock()
	delete(img.inflight, host)
	if c.err == nil {
		img.ccache.put(host, c.buf)
	}
	img.mu.Unlock()
	close(c.done)
	return c.buf, c.err
}

func (img *Image) inflate(host, clen int64) ([]byte, error) {
	comp := make([]byte, clen)
	if n, err := img.r.ReadAt(comp, host); err != nil && !(errors.Is(err, io.EOF) && int64(n) == clen) {
		return nil, fmt.Errorf("read compressed cluster at %d: %w", host, err)
	}
	d, _ := img.decoders.Get().(*decoder)
	if d == nil {
		d = newDecoder(img.compType)
	}
	defer img.decoders.Put(d)
	out := make([]byte, img.clusterSize)
	// Reading exactly one cluster bounds the output whatever the stream claims: a compression
	// bomb costs one cluster of memory and the time to inflate it.
	if err := d.decode(bytes.NewReader(comp), out); err != nil {
		return nil, fmt.Errorf("inflate %s cluster at %d (%d bytes): %v: %w", img.info.Compression, host, clen, err, ErrCorrupt)
	}
	return out, nil
}
