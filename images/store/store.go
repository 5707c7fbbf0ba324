package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"
)

// Converter turns a disk image read through r (size bytes) into a tar stream of
// its root filesystem, adapted for running as a container, written to w.
// images.Convert satisfies it through ConverterFunc.
type Converter interface {
	Convert(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error
}

// ConverterFunc adapts a function to Converter.
type ConverterFunc func(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error

// Convert implements Converter.
func (f ConverterFunc) Convert(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error {
	return f(ctx, r, size, w)
}

// OpenFunc opens the image source (a Glance download) and returns its body and
// its size in bytes, -1 when unknown.
type OpenFunc func(ctx context.Context) (io.ReadCloser, int64, error)

// Labels the store puts on every image it imports. Docker is the only index.
const (
	LabelManaged  = "org.openstack.nova-container-agent.managed"
	LabelImageID  = "org.openstack.nova-container-agent.image-id"
	LabelChecksum = "org.openstack.nova-container-agent.checksum"
	LabelSource   = "org.openstack.nova-container-agent.source"
	// LabelPrefix holds Options.Prefix: GC only considers images of its own
	// prefix, so two stores (or a test) sharing a daemon never collect each
	// other's images.
	LabelPrefix = "org.openstack.nova-container-agent.prefix"
)

// DefaultConfig is the configuration every converted image gets: systemd as
// PID 1, container=docker so systemd knows where it runs (systemd.io
// CONTAINER_INTERFACE), SIGRTMIN+3 so `docker stop` is a clean shutdown.
func DefaultConfig() ImageConfig {
	return ImageConfig{Cmd: []string{"/sbin/init"}, Env: []string{"container=docker"}, StopSignal: "SIGRTMIN+3"}
}

// Options configure a Store.
type Options struct {
	// Prefix is the repository prefix of the tags, e.g. "nca-glance".
	Prefix string
	// SpoolDir holds the in-flight downloads (unlinked files). Default os.TempDir().
	SpoolDir string
	// MaxBytes is the size the images may take before GC removes unused ones;
	// 0 disables GC.
	MaxBytes int64
	// MinIdle protects an image from GC for this long after an Ensure returned
	// it, covering the gap until the driver has created the container. Default 10m.
	MinIdle time.Duration
	// Logger receives debug lines; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store makes Glance images available as Docker images, converting each
// (image id, checksum) at most once at a time and keeping the result cached in
// Docker itself.
type Store struct {
	eng  Engine
	conv Converter
	opt  Options

	mu       sync.Mutex
	flights  map[string]*flight
	lastUsed map[string]time.Time // tag -> last Ensure; lost on restart (then image Created is used)
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)

// New returns a Store. It does not talk to the engine; call Engine.Ping first.
func New(eng Engine, conv Converter, opt Options) (*Store, error) {
	if opt.Prefix == "" {
		opt.Prefix = "nca-glance"
	}
	if !prefixRE.MatchString(opt.Prefix) {
		return nil, fmt.Errorf("tag prefix %q: %w: want a lower-case docker repository path", opt.Prefix, ErrInvalid)
	}
	if opt.SpoolDir == "" {
		opt.SpoolDir = os.TempDir()
	}
	if opt.MinIdle == 0 {
		opt.MinIdle = 10 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Store{eng: eng, conv: conv, opt: opt, flights: map[string]*flight{}, lastUsed: map[string]time.Time{}}, nil
}

var imageIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Tag returns the reference the image is stored under:
// <prefix>/<glance image id>:<checksum hex>.
func (s *Store) Tag(imageID string, sum Checksum) (string, error) {
	if !imageIDRE.MatchString(imageID) {
		return "", imageErr(imageID, ErrInvalid, fmt.Errorf("image id %q is not a lower-case uuid", imageID))
	}
	if _, err := sum.newHash(); err != nil {
		return "", imageErr(imageID, ErrInvalid, err)
	}
	// sha512 hex is 128 characters, exactly Docker's tag length limit.
	return s.opt.Prefix + "/" + imageID + ":" + sum.Value, nil
}

// flight is one conversion in progress, shared by every Ensure for its key.
type flight struct {
	done    chan struct{}
	tag     string
	err     error
	cancel  context.CancelFunc
	waiters int
}

// Ensure returns the tag of a runnable image for (imageID, sum), converting the
// image from open's stream when Docker does not have it yet. Concurrent calls for
// the same key share one conversion; the conversion is cancelled only when every
// caller waiting for it has given up.
func (s *Store) Ensure(ctx context.Context, imageID string, sum Checksum, open OpenFunc) (string, error) {
	tag, err := s.Tag(imageID, sum)
	if err != nil {
		return "", err
	}
	log := s.opt.Logger.With("image", imageID)
	s.mu.Lock()
	f, joined := s.flights[tag]
	if !joined {
		// The cache check happens under the flight so a conversion finishing
		// between check and start cannot be missed or repeated.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), tag: tag, cancel: cancel}
		s.flights[tag] = f
		go s.run(fctx, f, imageID, sum, open, log)
	}
	f.waiters++
	s.mu.Unlock()

	select {
	case <-f.done:
		s.mu.Lock()
		f.waiters--
		if f.err == nil {
			s.lastUsed[tag] = s.opt.Now()
		}
		s.mu.Unlock()
		return f.tag, f.err
	case <-ctx.Done():
		s.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants the result any more: stop the work and let the
			// next Ensure start afresh instead of joining a dying flight.
			f.cancel()
			if s.flights[tag] == f {
				delete(s.flights, tag)
			}
		}
		s.mu.Unlock()
		return "", fmt.Errorf("ensure image %s: %w", imageID, ctx.Err())
	}
}

func (s *Store) run(ctx context.Context, f *flight, imageID string, sum Checksum, open OpenFunc, log *slog.Logger) {
	defer f.cancel()
	_, err := s.eng.InspectImage(ctx, f.tag)
	switch {
	case err == nil:
		log.DebugContext(ctx, "image cache hit", "tag", f.tag)
	case errors.Is(err, ErrNotFound):
		err = s.convert(ctx, imageID, sum, open, f.tag, log)
	default:
		err = imageErr(imageID, ErrEngine, err)
	}
	s.mu.Lock()
	f.err = err
	if s.flights[f.tag] == f {
		delete(s.flights, f.tag)
	}
	s.mu.Unlock()
	close(f.done)
}

// convert runs download → spool → converter → holdback → docker import, with
// the checksum checked before the last bytes of the tar reach Docker.
func (s *Store) convert(ctx context.Context, imageID string, sum Checksum, open OpenFunc, tag string, log *slog.Logger) error {
	start := s.opt.Now()
	h, err := sum.newHash()
	if err != nil {
		return imageErr(imageID, ErrInvalid, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, size, err := open(ctx)
	if err != nil {
		return imageErr(imageID, ErrDownload, err)
	}
	if body == nil {
		return imageErr(imageID, ErrDownload, errors.New("image source returned no body"))
	}
	sp, err := newSpool(ctx, s.opt.SpoolDir, body, size, h)
	if err != nil {
		return imageErr(imageID, ErrDownload, err)
	}
	defer sp.Close()
	if size < 0 {
		// The converter needs the size up front (qcow2 bounds checks, raw
		// images): without it we must wait for the whole download.
		if size, err = sp.wait(); err != nil {
			return imageErr(imageID, ErrDownload, err)
		}
	}

	cfg := DefaultConfig()
	cfg.Labels = map[string]string{LabelManaged: "true", LabelImageID: imageID, LabelChecksum: sum.String(), LabelSource: "glance", LabelPrefix: s.opt.Prefix}
	pr, pw := io.Pipe()
	type result struct {
		id  string
		err error
	}
	imported := make(chan result, 1)
	go func() {
		id, err := s.eng.ImportImage(ctx, pr, tag, cfg)
		// Publish the result before closing the pipe, so a converter whose
		// Write fails because Docker gave up finds Docker's error waiting.
		imported <- result{id, err}
		pr.CloseWithError(fmt.Errorf("%w: %w", errImportEnded, errOr(err, io.ErrClosedPipe)))
	}()

	hb := newHoldback(pw)
	convErr := s.conv.Convert(ctx, sp, size, hb)
	var fail error
	var early *result
	if convErr != nil {
		select {
		case r := <-imported:
			early = &r
		default:
		}
	}
	switch {
	case early != nil && early.err != nil, errors.Is(convErr, errImportEnded):
		if early == nil {
			v := <-imported
			early = &v
		}
		fail = imageErr(imageID, ErrEngine, errOr(early.err, convErr))
	case convErr != nil:
		if _, derr := sp.wait(); derr != nil && errors.Is(derr, ErrDownload) {
			// A truncated download makes the converter fail too; report the cause.
			fail = imageErr(imageID, ErrDownload, derr)
		} else if ctx.Err() != nil {
			fail = fmt.Errorf("convert image %s: %w", imageID, ctx.Err())
		} else {
			fail = imageErr(imageID, ErrBrokenImage, convErr)
		}
	default:
		if _, derr := sp.wait(); derr != nil {
			fail = imageErr(imageID, ErrDownload, derr)
		} else if got := fmt.Sprintf("%x", h.Sum(nil)); got != sum.Value {
			fail = imageErr(imageID, ErrChecksumMismatch, fmt.Errorf("%s is %s, Glance says %s", sum.Algo, got, sum.Value))
		} else {
			// An error here means the import side failed; reported below.
			_ = hb.Release()
		}
	}
	if fail != nil {
		pw.CloseWithError(fail)
		r := early
		if r == nil {
			v := <-imported
			r = &v
		}
		if r.err == nil {
			// Cannot happen with a conforming Engine (the archive was never
			// completed); if it does, do not leave an unverified image behind.
			_ = s.eng.RemoveImage(context.WithoutCancel(ctx), r.id)
		}
		return fail
	}
	pw.Close()
	r := <-imported
	if r.err != nil {
		return imageErr(imageID, ErrEngine, r.err)
	}
	log.DebugContext(ctx, "image converted", "tag", tag, "image_ref", r.id, "seconds", s.opt.Now().Sub(start).Seconds())
	return nil
}

// errImportEnded is what a converter's Write returns once the engine stopped
// reading the tar stream; it marks the engine, not the image, as the culprit.
var errImportEnded = errors.New("container engine stopped reading the image stream")

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
