package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// GCResult reports one garbage collection.
type GCResult struct {
	// Removed holds the tags (or ids of untagged images) deleted, oldest use first.
	Removed []string
	// Freed is the sum of the removed images' sizes.
	Freed int64
	// Total is the size of the managed images before collection.
	Total int64
	// Kept is the size left after collection; it can stay above MaxBytes when
	// the rest is in use or recently used.
	Kept int64
}

// GC removes this store's images (label LabelPrefix = Options.Prefix), least recently used first, until their total size
// is at most Options.MaxBytes. It never removes an image a container (running
// or stopped) uses, one being converted, or one an Ensure returned less than
// MinIdle ago. Images are found by label, so GC after an agent restart sees the
// same cache; recency then falls back to the image creation time.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	var res GCResult
	s.mu.Lock()
	maxBytes := s.opt.MaxBytes
	s.mu.Unlock()
	if maxBytes <= 0 {
		return res, nil
	}
	imgs, err := s.eng.ListImages(ctx, LabelPrefix, s.opt.Prefix)
	if err != nil {
		return res, fmt.Errorf("image gc: %w", err)
	}
	used, err := s.eng.ImagesInUse(ctx)
	if err != nil {
		return res, fmt.Errorf("image gc: %w", err)
	}
	for _, im := range imgs {
		res.Total += im.Size
	}
	res.Kept = res.Total
	now := s.opt.Now()
	type cand struct {
		img  ImageInfo
		last time.Time
	}
	var cands []cand
	s.mu.Lock()
	for _, im := range imgs {
		if used[im.ID] || s.busyLocked(im) {
			continue
		}
		last := im.Created
		for _, t := range im.Tags {
			if u, ok := s.lastUsed[t]; ok && u.After(last) {
				last = u
			}
		}
		if now.Sub(last) < s.opt.MinIdle {
			continue
		}
		cands = append(cands, cand{im, last})
	}
	s.mu.Unlock()
	slices.SortFunc(cands, func(a, b cand) int {
		if c := a.last.Compare(b.last); c != 0 {
			return c
		}
		return strings.Compare(a.img.ID, b.img.ID)
	})
	var errs []error
	for _, c := range cands {
		if res.Kept <= maxBytes {
			break
		}
		err := s.eng.RemoveImage(ctx, c.img.ID)
		switch {
		case err == nil, errors.Is(err, ErrNotFound):
		case errors.Is(err, ErrInUse):
			// A container was created since ImagesInUse: keep it.
			continue
		default:
			errs = append(errs, err)
			continue
		}
		name := c.img.ID
		if len(c.img.Tags) > 0 {
			name = c.img.Tags[0]
		}
		s.mu.Lock()
		for _, t := range c.img.Tags {
			delete(s.lastUsed, t)
		}
		s.mu.Unlock()
		res.Removed = append(res.Removed, name)
		res.Freed += c.img.Size
		res.Kept -= c.img.Size
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("image gc: %w", errors.Join(errs...))
	}
	return res, nil
}

// SetMaxBytes changes the GC budget (e.g. on a configuration reload).
func (s *Store) SetMaxBytes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opt.MaxBytes = n
}

// busyLocked reports whether a conversion for one of im's tags is running.
func (s *Store) busyLocked(im ImageInfo) bool {
	for _, t := range im.Tags {
		if _, ok := s.flights[t]; ok {
			return true
		}
	}
	return false
}
