package storetest

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/store"
)

// Engine is an in-memory store.Engine. It parses every imported stream with
// archive/tar (as dockerd does) and keeps the file list of each image.
type Engine struct {
	mu         sync.Mutex
	images     map[string]*image // id -> image
	tags       map[string]string // ref -> id
	containers map[string]string // container name -> image id
	imports    int
	now        func() time.Time
}

type image struct {
	info  store.ImageInfo
	files map[string]*tar.Header
	data  map[string][]byte
}

var _ store.Engine = (*Engine)(nil)

// NewEngine returns an empty engine.
func NewEngine() *Engine {
	return &Engine{images: map[string]*image{}, tags: map[string]string{}, containers: map[string]string{}, now: time.Now}
}

// SetClock replaces the clock that stamps image creation times.
func (e *Engine) SetClock(now func() time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = now
}

// Ping implements store.Engine.
func (e *Engine) Ping(context.Context) error { return nil }

// ImportImage implements store.Engine: the tar must parse to its end-of-archive
// marker and the source must end without error, or nothing is created.
func (e *Engine) ImportImage(ctx context.Context, r io.Reader, ref string, cfg store.ImageConfig) (string, error) {
	if ref != "" && !validRef(ref) {
		return "", fmt.Errorf("invalid reference format %q", ref)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	img := &image{files: map[string]*tar.Header{}, data: map[string][]byte{}}
	var size int64
	sawEnd := false
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			sawEnd = true
			break
		}
		if err != nil {
			return "", fmt.Errorf("Error processing tar file: %w", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/")
		name = strings.TrimSuffix(name, "/")
		if _, dup := img.files[name]; dup && name != "" {
			return "", fmt.Errorf("Error processing tar file(duplicates of file paths not supported): %s", name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return "", fmt.Errorf("Error processing tar file: %w", err)
		}
		img.files[name], img.data[name] = hdr, b
		size += int64(len(b))
	}
	// Like dockerd, drain the rest of the body: an error there fails the import.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", fmt.Errorf("Error processing tar file: %w", err)
	}
	if !sawEnd {
		return "", errors.New("Error processing tar file: unexpected EOF")
	}
	fmt.Fprintf(h, "%q", cfg)
	id := fmt.Sprintf("sha256:%x", h.Sum(nil))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imports++
	img.info = store.ImageInfo{
		ID: id, Labels: maps.Clone(cfg.Labels), Size: size, Created: e.now(),
		Cmd: slices.Clone(cfg.Cmd), Env: slices.Clone(cfg.Env), StopSignal: cfg.StopSignal,
	}
	if old, ok := e.images[id]; ok {
		img.info.Tags = old.info.Tags
	}
	e.images[id] = img
	if ref != "" {
		e.retagLocked(ref, id)
	}
	return id, nil
}

func (e *Engine) retagLocked(ref, id string) {
	if old, ok := e.tags[ref]; ok && old != id {
		oi := e.images[old]
		oi.info.Tags = slices.DeleteFunc(oi.info.Tags, func(t string) bool { return t == ref })
	}
	e.tags[ref] = id
	if !slices.Contains(e.images[id].info.Tags, ref) {
		e.images[id].info.Tags = append(e.images[id].info.Tags, ref)
	}
}

// validRef is a loose version of Docker's reference grammar: lower-case
// repository path, optional tag of at most 128 word characters.
func validRef(ref string) bool {
	repo, tag, hasTag := strings.Cut(ref, ":")
	if hasTag && (len(tag) == 0 || len(tag) > 128) {
		return false
	}
	for _, c := range tag {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	if repo == "" || strings.ToLower(repo) != repo {
		return false
	}
	return true
}

func (e *Engine) resolveLocked(ref string) (*image, bool) {
	if id, ok := e.tags[ref]; ok {
		return e.images[id], true
	}
	if !strings.Contains(ref, ":") {
		if id, ok := e.tags[ref+":latest"]; ok {
			return e.images[id], true
		}
	}
	im, ok := e.images[ref]
	return im, ok
}

// InspectImage implements store.Engine.
func (e *Engine) InspectImage(_ context.Context, ref string) (store.ImageInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	im, ok := e.resolveLocked(ref)
	if !ok {
		return store.ImageInfo{}, fmt.Errorf("image %s: %w", ref, store.ErrNotFound)
	}
	return clone(im.info), nil
}

func clone(i store.ImageInfo) store.ImageInfo {
	i.Tags, i.Labels, i.Cmd, i.Env = slices.Clone(i.Tags), maps.Clone(i.Labels), slices.Clone(i.Cmd), slices.Clone(i.Env)
	return i
}

// ListImages implements store.Engine. Like `docker images`, untagged images are not listed.
func (e *Engine) ListImages(_ context.Context, key, val string) ([]store.ImageInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.ImageInfo
	for _, im := range e.images {
		if v, ok := im.info.Labels[key]; ok && v == val && len(im.info.Tags) > 0 {
			out = append(out, clone(im.info))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ImagesInUse implements store.Engine.
func (e *Engine) ImagesInUse(context.Context) (map[string]bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	used := map[string]bool{}
	for _, id := range e.containers {
		used[id] = true
	}
	return used, nil
}

// RemoveImage implements store.Engine.
func (e *Engine) RemoveImage(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	im, ok := e.resolveLocked(id)
	if !ok {
		return fmt.Errorf("remove image %s: %w", id, store.ErrNotFound)
	}
	for c, cid := range e.containers {
		if cid == im.info.ID {
			return fmt.Errorf("remove image %s: %w: used by container %s", id, store.ErrInUse, c)
		}
	}
	for _, t := range im.info.Tags {
		delete(e.tags, t)
	}
	delete(e.images, im.info.ID)
	return nil
}

// CreateContainer records a container using image ref, as `docker create` would.
func (e *Engine) CreateContainer(name, ref string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	im, ok := e.resolveLocked(ref)
	if !ok {
		return fmt.Errorf("create container %s: image %s: %w", name, ref, store.ErrNotFound)
	}
	e.containers[name] = im.info.ID
	return nil
}

// RemoveContainer forgets a container.
func (e *Engine) RemoveContainer(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, name)
}

// Imports counts successful imports.
func (e *Engine) Imports() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.imports
}

// File returns the header and content of path in image ref.
func (e *Engine) File(ref, path string) (*tar.Header, []byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	im, ok := e.resolveLocked(ref)
	if !ok {
		return nil, nil, false
	}
	h, ok := im.files[path]
	return h, im.data[path], ok
}
