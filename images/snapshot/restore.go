package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nova-container-agent/nova-container-agent/images"
	"github.com/nova-container-agent/nova-container-agent/images/disk"
	"github.com/nova-container-agent/nova-container-agent/images/qcow2"
	"github.com/nova-container-agent/nova-container-agent/images/rootfs"
)

// ErrOriginal wraps every failure to read the original image.
var ErrOriginal = errors.New("snapshot: original image")

// mergePrefixes are the trees the container adaptation empties (rootfs.Rules: /boot,
// /lib/modules, /usr/lib/modules). The original's content is merged in without replacing
// anything the guest has there.
var mergePrefixes = []string{"boot", "lib/modules", "usr/lib/modules"}

// runtimeFiles are bind-mounted by Docker over the image's copy, so a `docker export` shows
// Docker's placeholders and the guest never saw (or changed) the image's own; the VM gets the
// original's back.
var runtimeFiles = []string{"etc/hosts", "etc/hostname", "etc/resolv.conf"}

// fstabMarker is the prefix rootfs's fstab filter puts before each line it disables
// (images/rootfs/plan.go filterFstab); un-commenting such lines restores them verbatim.
const fstabMarker = "# removed for the container (no block devices): "

// sshDropIn and ncaMarker identify the sshd drop-in the adaptation adds (rootfs.NewPlan).
const (
	sshDropIn = "10-nca-hostkeys.conf"
	ncaMarker = "# Written by nova-container-agent"
)

// origEntry is what the original had at a watched path.
type origEntry struct {
	typ  byte
	link string
}

// origState records the original's watched paths (systemd unit links, cloud-init drop-ins,
// fstab), so that only what the adaptation added is taken away.
type origState struct {
	fstab   []byte
	entries map[string]origEntry
}

func watched(rel string) bool {
	return rel == "etc/fstab" || strings.HasPrefix(rel, "etc/systemd/system/") || strings.HasPrefix(rel, "etc/cloud/cloud.cfg.d/")
}

func underAny(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

// disk opens the original's virtual disk (qcow2 or raw).
func openDisk(ctx context.Context, r io.ReaderAt, size int64) (io.ReaderAt, int64, func() error, error) {
	if !qcow2.IsQCOW2(r) {
		return r, size, func() error { return nil }, nil
	}
	img, err := qcow2.Open(ctx, r, size)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w: open qcow2: %w", ErrOriginal, err)
	}
	return img, img.Size(), img.Close, nil
}

// errNotInPlace stops reading an original whose root the snapshot cannot replace in place.
var errNotInPlace = errors.New("original root not replaceable in place")

// readOriginal streams the original's root filesystem through the project's converter, without
// adaptation, merges what the adaptation removed into t, and describes the original disk.
// When the root cannot be replaced in place (Original.InPlace), it merges nothing and
// returns only RootFS and RootLV, with a nil state.
func readOriginal(ctx context.Context, r io.ReaderAt, size int64, t *tree, log *slog.Logger) (*Original, *origState, Stats, error) {
	state := &origState{entries: map[string]origEntry{}}
	pr, pw := io.Pipe()
	type convDone struct {
		res *images.Result
		err error
	}
	done := make(chan convDone, 1)
	go func() {
		res, err := images.Convert(ctx, r, size, pw, images.WithoutAdaptation(), images.WithLogger(log),
			images.WithRootCheck(func(res *images.Result) error {
				// A root the snapshot cannot replace in place gets a fresh disk: nothing of
				// the original (kernel, modules, boot pieces) would be of use on it.
				if ok, _ := (&Original{RootFS: res.Filesystem, RootLV: res.RootLV}).InPlace(); !ok {
					return errNotInPlace
				}
				return nil
			}))
		pw.CloseWithError(err)
		done <- convDone{res, err}
	}()
	filter := func(hdr *tar.Header, rel string, body io.Reader) (bool, mergeMode, error) {
		if watched(rel) {
			state.entries[rel] = origEntry{typ: hdr.Typeflag, link: hdr.Linkname}
			if rel == "etc/fstab" && hdr.Typeflag == tar.TypeReg && hdr.Size <= 1<<20 {
				b, err := io.ReadAll(body)
				if err != nil {
					return false, 0, fmt.Errorf("read original fstab: %w", err)
				}
				state.fstab = b
			}
			return false, 0, nil
		}
		if slices.Contains(runtimeFiles, rel) {
			return true, replaceExisting, nil
		}
		if underAny(rel, mergePrefixes) {
			return true, keepExisting, nil
		}
		return false, 0, nil
	}
	st, xerr := t.extract(ctx, pr, filter)
	if xerr != nil {
		pr.CloseWithError(xerr)
	} else {
		// drain whatever follows the end-of-archive marker so the converter can finish
		_, _ = io.Copy(io.Discard, pr)
	}
	cd := <-done
	if errors.Is(cd.err, errNotInPlace) {
		return &Original{VirtualSize: size, RootFS: cd.res.Filesystem, RootLV: cd.res.RootLV}, nil, Stats{}, nil
	}
	if xerr != nil {
		return nil, nil, st, fmt.Errorf("merge original root: %w", xerr)
	}
	if cd.err != nil {
		return nil, nil, st, fmt.Errorf("%w: read root filesystem: %w", ErrOriginal, cd.err)
	}
	res := cd.res
	orig := &Original{VirtualSize: size, Table: res.PartitionTable, RootFS: res.Filesystem, RootLV: res.RootLV}
	if res.QCOW2 != nil {
		orig.VirtualSize = res.QCOW2.VirtualSize
	}
	for _, p := range res.Partitions {
		if p.LV != "" {
			continue // a logical volume inside a partition, not a partition of the disk
		}
		orig.Partitions = append(orig.Partitions, p.Partition)
	}
	if res.RootPartition == 0 {
		orig.Root = disk.Partition{Number: 0, Start: 0, Size: orig.VirtualSize, Role: disk.RoleLinux}
	} else {
		i := slices.IndexFunc(orig.Partitions, func(p disk.Partition) bool { return p.Number == res.RootPartition })
		if i < 0 {
			return nil, nil, st, fmt.Errorf("%w: root partition %d not in the table", ErrOriginal, res.RootPartition)
		}
		orig.Root = orig.Partitions[i]
	}
	return orig, state, st, nil
}

// readSuper reads the original root's superblock.
func readSuper(dev io.ReaderAt, root disk.Partition) (Superblock, error) {
	b := make([]byte, 1024)
	if _, err := dev.ReadAt(b, root.Start+1024); err != nil {
		return Superblock{}, fmt.Errorf("%w: read superblock: %w", ErrOriginal, err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return Superblock{}, fmt.Errorf("%w: %w", ErrOriginal, err)
	}
	return sb, nil
}

// UnfilterFstab re-enables the lines the container adaptation commented out. ok reports
// whether the result mounts "/" (a VM needs that line to remount its root read-write).
func UnfilterFstab(b []byte) (out []byte, restored int, ok bool) {
	var sb strings.Builder
	for line := range strings.Lines(string(b)) {
		if rest, cut := strings.CutPrefix(line, fstabMarker); cut {
			line = rest
			restored++
		}
		sb.WriteString(line)
	}
	return []byte(sb.String()), restored, mountsRoot(sb.String())
}

func mountsRoot(fstab string) bool { return mounts(fstab, "/") }

// mounts reports whether fstab has an active line for mount point mnt.
func mounts(fstab, mnt string) bool {
	for line := range strings.Lines(fstab) {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && f[1] == mnt {
			return true
		}
	}
	return false
}

// maskedUnits is every unit name any family's rules mask.
func maskedUnits() []string {
	var out []string
	for _, rs := range rootfs.Rules {
		for _, u := range rs.Masks {
			if !slices.Contains(out, u.Name) {
				out = append(out, u.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// additions is every file any family's rules add, by relative path, with its content.
func additions() map[string]string {
	out := map[string]string{}
	for _, rs := range rootfs.Rules {
		for _, a := range rs.Additions {
			out[strings.TrimPrefix(a.Path, "/")] = a.Content
		}
	}
	return out
}

// unadapt undoes, in t, what the container adaptation did and the original did not have:
// fstab lines are re-enabled (or the original fstab restored if none mounts /), unit masks and
// added drop-ins are removed. It returns one line per change.
func unadapt(t *tree, orig *origState) ([]string, error) {
	var actions []string
	if st, ok, err := t.lstat("etc/fstab"); err != nil {
		return nil, err
	} else if ok && st.Mode&unix.S_IFMT == unix.S_IFREG {
		b, err := t.readFile("etc/fstab", 1<<20)
		if err != nil {
			return nil, err
		}
		nb, n, mounts := UnfilterFstab(b)
		how := fmt.Sprintf("etc/fstab: %d line(s) re-enabled", n)
		if !mounts && orig.fstab != nil && mountsRoot(string(orig.fstab)) {
			nb, how = orig.fstab, "etc/fstab: no / line; the original's restored"
		}
		if string(nb) != string(b) {
			if err := t.rewriteFile("etc/fstab", nb); err != nil {
				return nil, err
			}
			actions = append(actions, how)
		}
	}
	for _, u := range maskedUnits() {
		rel := "etc/systemd/system/" + u
		if oe, had := orig.entries[rel]; had && oe.typ == tar.TypeSymlink && oe.link == "/dev/null" {
			continue // masked in the original too
		}
		if link, ok, err := t.readlink(rel); err != nil {
			return nil, err
		} else if ok && link == "/dev/null" {
			if err := t.remove(rel, false); err != nil {
				return nil, err
			}
			actions = append(actions, "unmasked "+u)
		}
	}
	for rel, content := range additions() {
		if _, had := orig.entries[rel]; had {
			continue
		}
		if st, ok, err := t.lstat(rel); err != nil || !ok || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		b, err := t.readFile(rel, 1<<20)
		if err != nil || string(b) != content {
			continue // changed by the guest: theirs now
		}
		if err := t.remove(rel, false); err != nil {
			return nil, err
		}
		actions = append(actions, "removed "+rel)
	}
	names, err := t.readDir("etc/systemd/system")
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".d") {
			continue
		}
		dir := "etc/systemd/system/" + n
		rel := dir + "/" + sshDropIn
		if _, had := orig.entries[rel]; had {
			continue
		}
		if st, ok, err := t.lstat(rel); err != nil || !ok || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if b, err := t.readFile(rel, 1<<20); err != nil || !strings.HasPrefix(string(b), ncaMarker) {
			continue
		}
		if err := t.remove(rel, false); err != nil {
			return nil, err
		}
		actions = append(actions, "removed "+rel)
		if _, had := orig.entries[dir]; !had {
			if left, err := t.readDir(dir); err == nil && len(left) == 0 {
				if err := t.remove(dir, true); err != nil {
					return nil, err
				}
			}
		}
	}
	return actions, nil
}

// readlink returns the target of the symlink at rel; ok is false if rel is not a symlink.
func (t *tree) readlink(rel string) (string, bool, error) {
	st, ok, err := t.lstat(rel)
	if err != nil || !ok || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", false, err
	}
	dfd, base, err := t.lookupParent(rel)
	if err != nil {
		return "", false, err
	}
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dfd, base, buf)
	if err != nil {
		return "", false, fmt.Errorf("readlink %s: %w", rel, err)
	}
	return string(buf[:n]), true, nil
}

// hasKernel reports whether the tree's /boot holds a kernel image, or fstab mounts /boot from
// a partition (copied from the original with the rest of the disk outside the root).
func hasKernel(t *tree) bool {
	if b, err := t.readFile("etc/fstab", 1<<20); err == nil && mounts(string(b), "/boot") {
		return true
	}
	names, err := t.readDir("boot")
	if err != nil {
		return false
	}
	return slices.ContainsFunc(names, func(n string) bool {
		return strings.HasPrefix(n, "vmlinuz") || strings.HasPrefix(n, "vmlinux") || strings.HasPrefix(n, "bzImage")
	})
}
