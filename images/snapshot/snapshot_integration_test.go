//go:build integration

package snapshot_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images"
	"github.com/nova-container-agent/nova-container-agent/images/snapshot"
	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// The integration tests need root, Docker, e2fsprogs, fdisk, qemu-utils and the small test
// image that tests/images/build.sh small writes (NCA_IMAGES_DIR, default /var/cache/nca/images).
// The VM boot check also needs qemu-system-x86 and runs under TCG (KVM hangs Linux guests here).

func imagesDir() string {
	if d := os.Getenv("NCA_IMAGES_DIR"); d != "" {
		return d
	}
	return "/var/cache/nca/images"
}

func need(t testing.TB, original string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("snapshot integration tests need root (owners, devices, security.capability)")
	}
	for _, tool := range []string{"docker", "mkfs.ext4", "sfdisk", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install it (docker.io, e2fsprogs, fdisk, qemu-utils)", tool)
		}
	}
	if _, err := os.Stat(original); err != nil {
		t.Fatalf("test image missing: %v (run tests/images/build.sh small)", err)
	}
}

func randSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func docker(t testing.TB, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Stdin = stdin
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// exportOf converts the original with the project's converter, imports it into Docker, creates
// a container from it and writes `docker export` of that container to a file: exactly what
// the driver's Snapshot streams for an instance booted from the original.
func exportOf(t testing.TB, original, dir string) string {
	t.Helper()
	f, err := os.Open(original)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tag := "nca-test-snapshot/" + randSuffix() + ":latest"
	pr, pw := io.Pipe()
	go func() {
		_, err := images.Convert(context.Background(), f, st.Size(), pw)
		pw.CloseWithError(err)
	}()
	docker(t, pr, "import", "-c", `CMD ["/sbin/init"]`, "-", tag)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	name := "nca-test-snapshot-" + randSuffix()
	docker(t, nil, "create", "--name", name, tag)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	out := filepath.Join(dir, "export.tar")
	docker(t, nil, "export", "-o", out, name)
	return out
}

func build(t testing.TB, exportTar, original, work string) *snapshot.Result {
	return buildWith(t, exportTar, original, work, snapshot.Options{})
}

func buildWith(t testing.TB, exportTar, original, work string, o snapshot.Options) *snapshot.Result {
	t.Helper()
	ex, err := os.Open(exportTar)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	o.WorkDir = work
	if original != "" {
		of, err := os.Open(original)
		if err != nil {
			t.Fatal(err)
		}
		defer of.Close()
		st, _ := of.Stat()
		o.Original, o.OriginalSize = of, st.Size()
	}
	res, err := snapshot.Build(context.Background(), ex, o)
	if err != nil {
		t.Fatalf("snapshot.Build: %v", err)
	}
	return res
}

// runtimeOwned are Docker's bind-mount targets (the snapshot takes the original's copies) and
// the root directory (a docker export has no entry for it).
func runtimeOwned(n string) bool {
	return n == "." || n == "etc/hosts" || n == "etc/hostname" || n == "etc/resolv.conf"
}

// TestSnapshot builds snapshots of a container made from each original and converts them back;
// the GPT image (BIOS boot + /boot + / partitions) is also booted as a VM. The MBR test image's
// own grub.cfg points at /vmlinuz-<version> on the root filesystem, which does not exist
// (tests/images/build.sh writes an empty prefix), so the original itself does not boot and
// only its layout and round trip are checked here, grown to 3 GiB through sfdisk.
func TestSnapshot(t *testing.T) {
	gpt := filepath.Join(imagesDir(), "debian12-small-gpt-c.qcow2")
	mbr := filepath.Join(imagesDir(), "debian12-small-mbr-c.qcow2")
	xfs := filepath.Join(imagesDir(), "debian12-small-xfs-c.qcow2")
	lvm := filepath.Join(imagesDir(), "debian12-small-lvm-c.qcow2")
	cases := []struct {
		name, original, source string
		opts                   snapshot.Options
		mode                   snapshot.LayoutMode
		grow, bootable, boot   bool
	}{
		{name: "gpt original layout booted", original: gpt, source: gpt, mode: snapshot.LayoutOriginal, bootable: true, boot: true},
		{name: "mbr grown by flavor", original: mbr, source: mbr, opts: snapshot.Options{RootGB: 3, NoCompress: true}, mode: snapshot.LayoutOriginal, grow: true, bootable: true},
		{name: "fresh without original", source: mbr, opts: snapshot.Options{NoCompress: true}, mode: snapshot.LayoutFresh},
		// Roots that mkfs.ext4 cannot replace in place: the snapshot still converts back
		// into the same container, on a fresh disk without a boot loader.
		{name: "xfs original rebuilt fresh", original: xfs, source: xfs, opts: snapshot.Options{NoCompress: true}, mode: snapshot.LayoutFresh},
		{name: "lvm original rebuilt fresh", original: lvm, source: lvm, opts: snapshot.Options{NoCompress: true}, mode: snapshot.LayoutFresh},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			need(t, c.source)
			dir := t.TempDir()
			exportTar := exportOf(t, c.source, dir)
			work := filepath.Join(dir, "work")
			if err := os.Mkdir(work, 0o700); err != nil {
				t.Fatal(err)
			}
			res := buildWith(t, exportTar, c.original, work, c.opts)
			t.Cleanup(func() { res.Cleanup() })
			t.Logf("snapshot: qcow2 %d bytes, virtual %d, layout %s (%s), bootable %v (%s), stage %v, build %v",
				res.Size, res.VirtualSize, res.Layout.Mode, res.Layout.Note, res.VMBootable, res.BootNote, res.StageTime, res.BuildTime)
			t.Logf("tree %+v; restored %+v; actions %q; warnings %q", res.Tree, res.Restored, res.Actions, res.Warnings)
			if res.Layout.Mode != c.mode || res.Layout.Grow != c.grow || res.VMBootable != c.bootable {
				t.Fatalf("layout %s grow %v bootable %v (%s), want %s %v %v", res.Layout.Mode, res.Layout.Grow, res.VMBootable, res.BootNote, c.mode, c.grow, c.bootable)
			}
			if c.original != "" && c.mode == snapshot.LayoutFresh && !strings.Contains(res.Layout.Note, "ext4 on a fresh disk") {
				t.Errorf("layout note %q does not say why the original layout was not kept", res.Layout.Note)
			}
			if c.original != "" && c.mode == snapshot.LayoutOriginal && len(res.Actions) == 0 {
				t.Fatal("no un-adaptation step taken: the converter's fstab filter and masks were expected")
			}
			if c.mode == snapshot.LayoutFresh && (res.Restored.Entries != 0 || len(res.Actions) != 0) {
				t.Errorf("a fresh disk took %d entries and %d un-adaptation steps from the original: it has no use for them",
					res.Restored.Entries, len(res.Actions))
			}
			if c.opts.RootGB > 0 && res.VirtualSize < int64(c.opts.RootGB)<<30 {
				t.Errorf("virtual size %d below root_gb %d", res.VirtualSize, c.opts.RootGB)
			}
			roundTrip(t, exportTar, res)
			if c.boot {
				bootVM(t, res.Path, dir)
			}
		})
	}
}

// roundTrip converts the snapshot back with the project's converter and compares the tree with
// the export it was made from (owners, modes, content, xattrs, links, devices, mtimes).
func roundTrip(t *testing.T, exportTar string, res *snapshot.Result) {
	want, err := tartest.ReadFile(exportTar)
	if err != nil {
		t.Fatal(err)
	}
	qf, err := res.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	pr, pw := io.Pipe()
	go func() {
		st, _ := qf.Stat()
		_, err := images.Convert(context.Background(), qf, st.Size(), pw)
		pw.CloseWithError(err)
	}()
	got, err := tartest.Read(pr)
	if err != nil {
		t.Fatalf("convert the snapshot back: %v", err)
	}
	// Entries the converter appends take the root directory's mtime, which a docker export
	// does not carry: compare them without mtimes.
	appended := func(n string) bool {
		return strings.HasPrefix(n, "etc/systemd/system/") && (got[n] != nil && got[n].Linkname == "/dev/null" || strings.HasSuffix(n, ".conf")) ||
			strings.HasPrefix(n, "etc/cloud/cloud.cfg.d/99-")
	}
	// mkfs.ext4 always makes lost+found: a guest whose root was XFS had none.
	_, hadLostFound := want["lost+found"]
	skip := func(n string) bool { return runtimeOwned(n) || n == "lost+found" && !hadLostFound }
	diffs := tartest.Compare(want, got, tartest.Options{Skip: func(n string) bool { return skip(n) || appended(n) }})
	diffs = append(diffs, tartest.Compare(want, got, tartest.Options{MtimePrecision: -1, Skip: skip})...)
	for n := range got {
		if _, ok := want[n]; !ok && !skip(n) {
			diffs = append(diffs, n+": not in the export")
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%d differences between the export and the snapshot converted back, first ones:\n%s", len(diffs), strings.Join(diffs[:min(40, len(diffs))], "\n"))
	}
	t.Logf("round trip compared %d entries", len(want))
}

func bootVM(t *testing.T, qcow, dir string) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 not found: apt-get install --no-install-recommends qemu-system-x86")
	}
	overlay := filepath.Join(dir, "boot-overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", qcow, overlay).CombinedOutput(); err != nil {
		t.Fatalf("overlay: %v: %s", err, out)
	}
	console := filepath.Join(dir, "console.log")
	cmd := exec.Command("qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "file:"+console, "-nic", "none",
		"-drive", "file="+strings.ReplaceAll(overlay, ",", ",,")+",if=virtio,format=qcow2")
	var qerr bytes.Buffer
	cmd.Stderr = &qerr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	const limit = 300 * time.Second
	start := time.Now()
	for {
		b, _ := os.ReadFile(console)
		if bytes.Contains(b, []byte("login:")) {
			t.Logf("VM reached a login prompt after %v (TCG)", time.Since(start).Round(time.Second))
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "FAILED") || strings.Contains(l, "emergency") {
					t.Errorf("boot problem: %s", l)
				}
			}
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("qemu exited before a login prompt: %v: %s; console tail:\n%s", err, qerr.String(), tail(b))
		case <-time.After(2 * time.Second):
		}
		if time.Since(start) > limit {
			t.Fatalf("no login prompt within %v; console tail:\n%s", limit, tail(b))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// BenchmarkSnapshotSmall measures Build for the small image's container export (stage + build)
// and prints the figures; run with -benchtime=1x.
func BenchmarkSnapshotSmall(b *testing.B) {
	original := filepath.Join(imagesDir(), "debian12-small-gpt-c.qcow2")
	need(b, original)
	dir := b.TempDir()
	exportTar := exportOf(b, original, dir)
	est, _ := os.Stat(exportTar)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		work := filepath.Join(dir, fmt.Sprint("work", i))
		os.Mkdir(work, 0o700)
		res := build(b, exportTar, original, work)
		b.ReportMetric(res.StageTime.Seconds(), "stage-s")
		b.ReportMetric(res.BuildTime.Seconds(), "build-s")
		b.ReportMetric(float64(res.Size)/1e6, "qcow2-MB")
		b.ReportMetric(float64(res.VirtualSize)/(1<<30), "virtual-GiB")
		fmt.Printf("snapshot small: export tar %d MB; stage (instance paused) %.1f s; build %.1f s; qcow2 %d MB (virtual %d MiB); restored %d MB from the original\n",
			est.Size()/1e6, res.StageTime.Seconds(), res.BuildTime.Seconds(), res.Size/1e6, res.VirtualSize>>20, res.Restored.DataBytes/1e6)
		res.Cleanup()
	}
}
