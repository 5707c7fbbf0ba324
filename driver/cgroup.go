package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// Cgroups writes the per-instance parent cgroup on the host. The limits
// there are the enforcement ceiling: Docker writes the same limits on the
// container's own (leaf) cgroup, which is what lxcfs and docker stats read,
// but the guest's root holds CAP_SYS_ADMIN and cgroup v1 has no delegation
// protection, so it could raise the leaf's limit files; the parent sits
// outside its cgroup namespace.
type Cgroups interface {
	// Apply creates parent (e.g. /nca/<uuid>) in each controller of files
	// and writes the files in order.
	Apply(ctx context.Context, parent string, files []spec.CgroupFile) error
	// Remove deletes parent from every controller; a missing one is fine.
	Remove(ctx context.Context, parent string) error
}

// HostCgroupsV1 is Cgroups on a cgroup v1 tree mounted at Root.
type HostCgroupsV1 struct {
	Root string // normally /sys/fs/cgroup
}

var _ Cgroups = HostCgroupsV1{}

func (h HostCgroupsV1) dir(controller, parent string) (string, error) {
	clean := filepath.Clean("/" + parent)
	if clean == "/" || strings.Contains(controller, "/") || controller == "" {
		return "", fmt.Errorf("cgroup path %q in %q: %w", parent, controller, spec.ErrInvalid)
	}
	return filepath.Join(h.Root, controller, clean), nil
}

// Apply implements Cgroups.
func (h HostCgroupsV1) Apply(ctx context.Context, parent string, files []spec.CgroupFile) error {
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir, err := h.dir(f.Controller, parent)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		p := filepath.Join(dir, f.File)
		if err := os.WriteFile(p, []byte(f.Value), 0o644); err != nil {
			return fmt.Errorf("write %s = %s: %w", p, f.Value, err)
		}
	}
	return nil
}

// Remove implements Cgroups. Docker's cgroupfs driver creates the parent in
// every controller (blkio, devices, freezer, ...), not only the limited
// ones, so every controller directory is visited. Children are removed first
// in case Docker left an empty leaf behind.
func (h HostCgroupsV1) Remove(ctx context.Context, parent string) error {
	ents, err := os.ReadDir(h.Root)
	if err != nil {
		return fmt.Errorf("list cgroup controllers in %s: %w", h.Root, err)
	}
	var errs []error
	seen := map[string]bool{}
	for _, e := range ents {
		dir, err := h.dir(e.Name(), parent)
		if err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(filepath.Join(h.Root, e.Name()))
		if err != nil || seen[real] {
			continue // cpu and cpuacct are symlinks to cpu,cpuacct
		}
		seen[real] = true
		if err := removeCgroupDir(ctx, dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupDir(ctx context.Context, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeCgroupDir(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// rmdir is the only way to delete a cgroup; its control files are not
	// removable. On a plain directory (unit tests) remove files first.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if isCgroupFS(dir) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return nil
}
