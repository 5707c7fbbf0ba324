package tartest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Entry is what a layer says about one path.
type Entry struct {
	Name     string // normalised: no "./" prefix, no trailing "/", root is "."
	Type     byte   // tar.TypeReg (TypeRegA folded in), TypeDir, TypeSymlink, TypeLink, TypeChar, TypeBlock, TypeFifo
	Mode     int64  // permission bits incl. setuid/setgid/sticky
	UID, GID int
	Size     int64
	SHA256   string // regular files
	Linkname string // symlink target as written; for TypeLink the normalised target name
	Devmajor int64
	Devminor int64
	Xattrs   map[string]string
	ModTime  time.Time
}

// Set maps normalised names to entries. A later entry for the same name replaces the earlier
// one, as extraction would.
type Set map[string]*Entry

// Normalize turns a tar member name into the form Set uses.
func Normalize(name string) string {
	n := path.Clean("/" + name)
	if n == "/" {
		return "."
	}
	return strings.TrimPrefix(n, "/")
}

// ReadFile reads a tar file into a Set.
func ReadFile(p string) (Set, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	return Read(f)
}

// Read consumes a tar stream into a Set.
func Read(r io.Reader) (Set, error) {
	tr := tar.NewReader(r)
	s := Set{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		e := &Entry{Name: Normalize(h.Name), Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
			Linkname: h.Linkname, Devmajor: h.Devmajor, Devminor: h.Devminor, ModTime: h.ModTime, Xattrs: map[string]string{}}
		if e.Type == tar.TypeRegA {
			e.Type = tar.TypeReg
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				e.Xattrs[x] = v
			}
		}
		switch e.Type {
		case tar.TypeReg:
			hash := sha256.New()
			n, err := io.Copy(hash, tr)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", h.Name, err)
			}
			e.Size, e.SHA256 = n, hex.EncodeToString(hash.Sum(nil))
		case tar.TypeLink:
			e.Linkname = Normalize(h.Linkname)
		case tar.TypeChar, tar.TypeBlock:
		default:
			e.Devmajor, e.Devminor = 0, 0
		}
		s[e.Name] = e
	}
}

// Options relax Compare where a difference is expected.
type Options struct {
	// MtimePrecision is the granularity mtimes are compared at; 0 means exact, a negative value
	// ignores mtimes. Directory mtimes are never compared (adding or dropping entries changes them).
	MtimePrecision time.Duration
	// Skip excludes names (in both sets) from the comparison, e.g. paths an adaptation changed.
	Skip func(name string) bool
	// SkipXattr excludes xattr names from the comparison.
	SkipXattr func(name string) bool
}

// resolve follows a TypeLink to the entry carrying the data and metadata.
func (s Set) resolve(e *Entry) *Entry {
	for range 64 {
		if e.Type != tar.TypeLink {
			return e
		}
		t, ok := s[e.Linkname]
		if !ok {
			return e
		}
		e = t
	}
	return e
}

// linkGroups returns, for every name in a hard-link group, the sorted names of the group.
func (s Set) linkGroups(skip func(string) bool) map[string]string {
	groups := map[string][]string{}
	for n, e := range s {
		if e.Type == tar.TypeLink && !skip(n) {
			root := s.resolve(e).Name
			groups[root] = append(groups[root], n)
		}
	}
	out := map[string]string{}
	for root, names := range groups {
		names = append(names, root)
		sort.Strings(names)
		key := strings.Join(names, "|")
		for _, n := range names {
			out[n] = key
		}
	}
	return out
}

// Compare lists the differences between want and got, one line each; none means equal.
func Compare(want, got Set, o Options) []string {
	skip := o.Skip
	if skip == nil {
		skip = func(string) bool { return false }
	}
	skipX := o.SkipXattr
	if skipX == nil {
		skipX = func(string) bool { return false }
	}
	var diffs []string
	wg, gg := want.linkGroups(skip), got.linkGroups(skip)
	names := slices.Sorted(maps.Keys(want))
	for _, n := range names {
		if skip(n) {
			continue
		}
		we, ok := got[n]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing", n))
			continue
		}
		if wg[n] != gg[n] {
			diffs = append(diffs, fmt.Sprintf("%s: hard-link group %q, want %q", n, gg[n], wg[n]))
		}
		w, g := want.resolve(want[n]), got.resolve(we)
		add := func(f string, a ...any) { diffs = append(diffs, n+": "+fmt.Sprintf(f, a...)) }
		if w.Type != g.Type {
			add("type %q, want %q", g.Type, w.Type)
			continue
		}
		if w.Mode != g.Mode {
			add("mode %#o, want %#o", g.Mode, w.Mode)
		}
		if w.UID != g.UID || w.GID != g.GID {
			add("owner %d:%d, want %d:%d", g.UID, g.GID, w.UID, w.GID)
		}
		switch w.Type {
		case tar.TypeReg:
			if w.Size != g.Size || w.SHA256 != g.SHA256 {
				add("content %d bytes sha256 %s, want %d bytes %s", g.Size, g.SHA256, w.Size, w.SHA256)
			}
		case tar.TypeSymlink:
			if w.Linkname != g.Linkname {
				add("symlink to %q, want %q", g.Linkname, w.Linkname)
			}
		case tar.TypeChar, tar.TypeBlock:
			if w.Devmajor != g.Devmajor || w.Devminor != g.Devminor {
				add("device %d:%d, want %d:%d", g.Devmajor, g.Devminor, w.Devmajor, w.Devminor)
			}
		}
		if w.Type != tar.TypeDir && o.MtimePrecision >= 0 {
			wt, gt := w.ModTime, g.ModTime
			if o.MtimePrecision > 0 {
				wt, gt = wt.Truncate(o.MtimePrecision), gt.Truncate(o.MtimePrecision)
			}
			if !wt.Equal(gt) {
				add("mtime %s, want %s", g.ModTime.Format(time.RFC3339Nano), w.ModTime.Format(time.RFC3339Nano))
			}
		}
		for k, v := range w.Xattrs {
			if skipX(k) {
				continue
			}
			if gv, ok := g.Xattrs[k]; !ok {
				add("xattr %s missing", k)
			} else if gv != v {
				add("xattr %s = %x, want %x", k, gv, v)
			}
		}
		for k := range g.Xattrs {
			if _, ok := w.Xattrs[k]; !ok && !skipX(k) {
				add("unexpected xattr %s", k)
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[n]; !ok && !skip(n) {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected entry", n))
		}
	}
	return diffs
}
