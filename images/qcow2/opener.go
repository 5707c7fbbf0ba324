package qcow2

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DirOpener returns an Opener that only opens regular files inside dir (through os.Root, so
// neither "../" nor a symlink in the name can escape it): an untrusted header cannot make the
// reader open /etc/shadow. Absolute names are accepted when they lie inside dir.
func DirOpener(dir string) Opener {
	return func(_ context.Context, name string) (io.ReaderAt, int64, io.Closer, error) {
		if strings.Contains(name, "://") || strings.ContainsRune(name, 0) || name == "" {
			return nil, 0, nil, fmt.Errorf("backing file %q is not a local file name: %w", name, ErrUnsupported)
		}
		rel := name
		if filepath.IsAbs(name) {
			r, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(name))
			if err != nil {
				return nil, 0, nil, fmt.Errorf("backing file %q outside %s: %w", name, dir, ErrUnsupported)
			}
			rel = r
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("open backing directory %s: %w", dir, err)
		}
		defer root.Close()
		f, err := root.Open(rel)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("open backing file %q in %s: %w", name, dir, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("stat backing file %q: %w", name, err)
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, nil, fmt.Errorf("backing file %q is not a regular file: %w", name, ErrUnsupported)
		}
		return f, st.Size(), f, nil
	}
}
