//go:build integration

package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/images/store"
	"github.com/nova-container-agent/nova-container-agent/images/store/storetest"
)

// Integration tests against the real dockerd (default socket) and the test
// images of tests/images/build.sh (NCA_IMAGES_DIR, default /var/cache/nca/images).

func dockerClient(t *testing.T) (*client.Client, *store.Docker) {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	eng := store.NewDocker(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eng.Ping(ctx); err != nil {
		t.Fatalf("docker is required for integration tests (default socket): %v", err)
	}
	return cli, eng
}

func runID() string { return strings.ToLower(rand.Text()[:10]) }

func TestDockerEngineConformance(t *testing.T) {
	cli, _ := dockerClient(t)
	storetest.RunEngineSuite(t, func(t *testing.T) store.Engine { _, e := dockerClient(t); return e },
		func(t *testing.T, _ store.Engine, ref string) func() {
			ctx := context.Background()
			c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:   "nca-test-store-pin-" + runID(),
				Config: &container.Config{Image: ref, Cmd: []string{"/sbin/init"}},
			})
			if err != nil {
				t.Fatalf("create pinning container from %s: %v", ref, err)
			}
			return func() {
				if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
					t.Errorf("remove pinning container: %v", err)
				}
			}
		})
}

// TestDockerChecksumMismatch proves the holdback against the real daemon: the
// whole tar but its tail reaches dockerd, and still no image appears.
func TestDockerChecksumMismatch(t *testing.T) {
	ctx := context.Background()
	_, eng := dockerClient(t)
	prefix := "nca-test-store-" + runID()
	st := newStore(t, eng, &tarConverter{}, store.Options{Prefix: prefix})
	data := storetest.MiniRootfs(t, "mismatch-"+prefix)
	wrong := sha([]byte("something else"))
	_, err := st.Ensure(ctx, imgID, wrong, newSource(data).open)
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("Ensure = %v, want ErrChecksumMismatch", err)
	}
	imgs, err := eng.ListImages(ctx, store.LabelPrefix, prefix)
	if err != nil || len(imgs) != 0 {
		t.Fatalf("images after a mismatch: %+v, %v", imgs, err)
	}
	// Nothing dangling either: the mismatch must not leave an untagged layer.
	imgs, _ = eng.ListImages(ctx, store.LabelImageID, imgID)
	for _, im := range imgs {
		if im.Labels[store.LabelPrefix] == prefix {
			t.Errorf("dangling image from the failed import: %+v", im)
		}
	}
}

func imagesDir(t *testing.T) string {
	d := os.Getenv("NCA_IMAGES_DIR")
	if d == "" {
		d = "/var/cache/nca/images"
	}
	if _, err := os.Stat(filepath.Join(d, "debian12-small-mbr.stamp")); err != nil {
		t.Fatalf("test image missing (%v): run tests/images/build.sh small", err)
	}
	return d
}

func fileSource(t *testing.T, path string) (store.Checksum, store.OpenFunc) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := store.Checksum{Algo: "sha512", Value: fmt.Sprintf("%x", h.Sum(nil))}
	return sum, func(context.Context) (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
}

type countingConverter struct {
	inner store.Converter
	n     atomic.Int32
}

func (c *countingConverter) Convert(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error {
	c.n.Add(1)
	return c.inner.Convert(ctx, r, size, w)
}

// TestDockerSmallImage: 20 concurrent Ensure of the compressed small qcow2 →
// one conversion; cache hit; the image boots systemd to "running" with no
// failed unit and accepts SSH; GC keeps it while a container uses it and
// removes it afterwards.
func TestDockerSmallImage(t *testing.T) {
	dir := imagesDir(t)
	// MBR compressed, and GPT with / in partition 3 and a separate /boot.
	for _, name := range []string{"debian12-small-mbr-c.qcow2", "debian12-small-gpt.qcow2"} {
		t.Run(name, func(t *testing.T) { testSmallImage(t, filepath.Join(dir, name)) })
	}
}

func testSmallImage(t *testing.T, qcow string) {
	ctx := context.Background()
	cli, eng := dockerClient(t)
	sum, open := fileSource(t, qcow)
	conv := &countingConverter{inner: store.ImagesConverter()}
	prefix := "nca-test-store-" + runID()
	st := newStore(t, eng, conv, store.Options{Prefix: prefix, MaxBytes: 1, MinIdle: time.Nanosecond})
	id := "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	t.Cleanup(func() {
		if info, err := eng.InspectImage(ctx, prefix+"/"+id+":"+sum.Value); err == nil {
			_ = eng.RemoveImage(ctx, info.ID)
		}
	})

	start := time.Now()
	const n = 20
	var wg sync.WaitGroup
	tags := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); tags[i], errs[i] = st.Ensure(ctx, id, sum, open) }()
	}
	wg.Wait()
	t.Logf("20 concurrent Ensure of %s: %.1fs", filepath.Base(qcow), time.Since(start).Seconds())
	for i := range n {
		if errs[i] != nil || tags[i] != tags[0] {
			t.Fatalf("Ensure %d = %q, %v", i, tags[i], errs[i])
		}
	}
	if c := conv.n.Load(); c != 1 {
		t.Errorf("conversions = %d, want 1", c)
	}
	tag := tags[0]
	info, err := eng.InspectImage(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: %d bytes, stop signal %s", tag, info.Size, info.StopSignal)
	if info.StopSignal != "SIGRTMIN+3" || info.Labels[store.LabelImageID] != id {
		t.Errorf("image config: %+v", info)
	}

	hit := time.Now()
	if tag2, err := st.Ensure(ctx, id, sum, open); err != nil || tag2 != tag {
		t.Fatalf("cached Ensure = %s, %v", tag2, err)
	}
	t.Logf("cache hit: %v", time.Since(hit))
	if c := conv.n.Load(); c != 1 {
		t.Errorf("conversions after cache hit = %d, want 1", c)
	}

	name := "nca-test-store-boot-" + runID()
	bootAndSSH(t, name, tag)

	// The container exists (stopped or running): GC must keep the image.
	res, err := st.GC(ctx)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(res.Removed) != 0 {
		t.Errorf("GC removed %v while container %s uses it", res.Removed, name)
	}
	if _, err := cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove container: %v", err)
	}
	res, err = st.GC(ctx)
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if len(res.Removed) != 1 || res.Removed[0] != tag {
		t.Errorf("GC after container removal removed %v, want [%s]", res.Removed, tag)
	}
	if _, err := eng.InspectImage(ctx, tag); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("image still present after GC: %v", err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// bootAndSSH runs the image with the systemd flags of images.md §2 (variant V5)
// and leaves the container for the caller to remove.
func bootAndSSH(t *testing.T, name, image string) {
	t.Helper()
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	run(t, "docker", "run", "-d", "--name", name,
		"--cgroupns=private", "--cap-add", "SYS_ADMIN", "--tmpfs", "/sys/fs/cgroup",
		"--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
		"--stop-signal", "SIGRTMIN+3", "-e", "container=docker", image)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var out []byte
	var err error
	for {
		// Until systemd has its bus socket, systemctl fails at once: retry.
		out, err = exec.CommandContext(ctx, "docker", "exec", name, "systemctl", "is-system-running", "--wait").CombinedOutput()
		if !bytes.Contains(out, []byte("Failed to connect to bus")) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	state := strings.TrimSpace(string(out))
	t.Logf("is-system-running: %q after %.1fs", state, time.Since(start).Seconds())
	if failed := run(t, "docker", "exec", name, "systemctl", "--failed", "--no-legend", "--plain"); failed != "" {
		t.Errorf("failed units:\n%s", failed)
	}
	if err != nil || state != "running" {
		logs, _ := exec.Command("docker", "logs", "--tail", "40", name).CombinedOutput()
		t.Fatalf("systemd state %q (%v), want running\n%s", state, err, logs)
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "docker", "exec", name, "sh", "-c",
		"install -d -m 700 -o debian -g debian /home/debian/.ssh && printf '%s' \"$0\" > /home/debian/.ssh/authorized_keys && chown debian:debian /home/debian/.ssh/authorized_keys && chmod 600 /home/debian/.ssh/authorized_keys",
		string(pub))
	ip := run(t, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
	var sshOut []byte
	for i := 0; i < 20; i++ {
		sshOut, err = exec.Command("ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "debian@"+ip, "sudo -n id -u && systemctl is-system-running").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ssh debian@%s: %v\n%s", ip, err, sshOut)
	}
	if !bytes.Contains(sshOut, []byte("0\nrunning")) {
		t.Errorf("ssh output = %q, want sudo uid 0 and running", sshOut)
	}
	t.Logf("ssh debian@%s ok (sudo works)", ip)
}

// TestDockerXFSAndLVMImages: XFS and LVM roots (images/xfs, images/lvm) go through the store
// like any other image: converted once, imported, labelled, and booting systemd with no
// failed unit and sshd answering.
func TestDockerXFSAndLVMImages(t *testing.T) {
	dir := imagesDir(t)
	ctx := context.Background()
	_, eng := dockerClient(t)
	for _, file := range []string{"debian12-small-xfs-c.qcow2", "debian12-small-lvm-c.qcow2"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join(dir, file)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%v: run tests/images/build.sh xfs lvm", err)
			}
			sum, open := fileSource(t, path)
			prefix := "nca-test-store-" + runID()
			st := newStore(t, eng, store.ImagesConverter(), store.Options{Prefix: prefix})
			const id = "7a6b5c4d-3e2f-1a0b-9c8d-7e6f5a4b3c2d"
			ref, err := st.Ensure(ctx, id, sum, open)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			t.Cleanup(func() {
				if info, err := eng.InspectImage(ctx, ref); err == nil {
					_ = eng.RemoveImage(ctx, info.ID)
				}
			})
			if want := prefix + "/" + id + ":" + sum.Value; ref != want {
				t.Errorf("ref %q, want %q", ref, want)
			}
			out, err := exec.Command("docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/cat", ref, "/etc/os-release").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "bookworm") {
				t.Errorf("docker run %s cat /etc/os-release: %v: %s", ref, err, out)
			}
			if imgs, _ := eng.ListImages(ctx, store.LabelPrefix, prefix); len(imgs) != 1 {
				t.Errorf("%d images with our label after one conversion, want 1: %+v", len(imgs), imgs)
			}
			bootAndSSH(t, prefix+"-boot", ref)
		})
	}
}
