package driver_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

const (
	uuid1 = "5f0c7a52-6d7e-4f0a-9b8e-1c2d3e4f5a61"
	uuid2 = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

type env struct {
	d      *driver.Driver
	f      *drivertest.Fake
	cgRoot string
	proc   string
	state  string
}

// guestImageTar is a minimal "VM image": init, passwd, homes.
func guestImageTar(t *testing.T, marker string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	dir := func(name string, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, Uid: uid, Gid: uid})
	}
	file := func(name, data string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), Uid: uid, Gid: uid})
		_, _ = tw.Write([]byte(data))
	}
	dir("etc/", 0)
	dir("sbin/", 0)
	dir("root/", 0)
	dir("home/", 0)
	dir("home/debian/", 1000)
	dir("home/debian/.ssh/", 1000)
	file("sbin/init", "#!systemd", 0o755, 0)
	file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000:Debian:/home/debian:/bin/bash\n", 0o644, 0)
	file("etc/shadow", "root:*:19700:0:99999:7:::\ndebian:!:19700:0:99999:7:::\n", 0o640, 0)
	file("home/debian/.ssh/authorized_keys", "ssh-ed25519 AAAAimage baked@image\n", 0o600, 1000)
	file("etc/marker", marker, 0o644, 0)
	_ = tw.Close()
	return b.Bytes()
}

func importImage(t *testing.T, f *drivertest.Fake, ref, marker string) {
	t.Helper()
	rc, err := f.ImageImport(context.Background(), client.ImageImportSource{Source: bytes.NewReader(guestImageTar(t, marker)), SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}

func newEnv(t *testing.T, opts ...driver.Option) *env {
	t.Helper()
	e := &env{f: drivertest.NewFake(), cgRoot: t.TempDir(), proc: t.TempDir(), state: t.TempDir()}
	for _, c := range []string{"memory", "cpu", "pids", "freezer"} {
		if err := os.Mkdir(filepath.Join(e.cgRoot, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	importImage(t, e.f, "nca-test/guest:1", "one")
	base := []driver.Option{
		driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		driver.WithCgroups(driver.HostCgroupsV1{Root: e.cgRoot}),
		driver.WithStateDir(e.state),
		driver.WithProcRoot(e.proc),
		driver.WithLXCFSCheck(func(string) error { return errors.New("not mounted") }),
		driver.WithArch("amd64"),
	}
	d, err := driver.New(context.Background(), e.f, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	return e
}

func inst(id string) spec.Instance {
	return spec.Instance{
		UUID: id, Hostname: "vm-" + id[:4], Image: "nca-test/guest:1", ImageID: "img-1",
		Flavor:         spec.Flavor{Name: "m1.tiny", VCPUs: 1, MemoryMB: 256, RootGB: 1},
		AuthorizedKeys: []string{"ssh-ed25519 AAAAuser user@nova"},
	}
}

func (e *env) inspect(t *testing.T, name string) (running bool, pid int, id string) {
	t.Helper()
	r, err := e.f.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		return false, 0, ""
	}
	return r.Container.State.Running, r.Container.State.Pid, r.Container.ID
}

func (e *env) state1(t *testing.T, id string) driver.State {
	t.Helper()
	st, err := e.d.GetState(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSpawnPlugsBeforeInit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var plugged string
	plug := func(ctx context.Context, ns string) error {
		up, pid, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
		if !up {
			t.Error("plug called before the sandbox runs")
		}
		if ns != filepath.Join(e.proc, strconv.Itoa(pid), "ns", "net") {
			t.Errorf("netns path %s for sandbox pid %d", ns, pid)
		}
		// The instance container may be created meanwhile, but never started.
		if up, _, _ := e.inspect(t, "nca-"+uuid1); up {
			t.Error("instance container runs before the network is plugged")
		}
		plugged = ns
		return nil
	}
	if err := e.d.Spawn(ctx, inst(uuid1), plug); err != nil {
		t.Fatal(err)
	}
	if plugged == "" {
		t.Fatal("plug not called")
	}
	if ns, err := e.d.SandboxNetNS(ctx, uuid1); err != nil || ns != plugged {
		t.Errorf("SandboxNetNS = %s, %v; plugged %s", ns, err, plugged)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Running || !st.SandboxRunning {
		t.Errorf("state %+v", st)
	}
	// keys: root gets ours, debian keeps the image's and gets ours.
	h, data, err := e.f.File("nca-"+uuid1, "/root/.ssh/authorized_keys")
	if err != nil || string(data) != "ssh-ed25519 AAAAuser user@nova\n" || h.Uid != 0 || h.FileInfo().Mode().Perm() != 0o600 {
		t.Errorf("root keys %q uid %d mode %v err %v", data, h.Uid, h.FileInfo().Mode(), err)
	}
	h, data, err = e.f.File("nca-"+uuid1, "/home/debian/.ssh/authorized_keys")
	if err != nil || string(data) != "ssh-ed25519 AAAAimage baked@image\nssh-ed25519 AAAAuser user@nova\n" || h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("debian keys %q uid %d err %v", data, h.Uid, err)
	}
	if h, _, _ := e.f.File("nca-"+uuid1, "/home/debian/.ssh"); h.Uid != 1000 || h.FileInfo().Mode().Perm() != 0o700 {
		t.Errorf(".ssh dir uid %d mode %v", h.Uid, h.FileInfo().Mode())
	}
	// parent cgroup limits were written before start.
	b, err := os.ReadFile(filepath.Join(e.cgRoot, "memory", "nca", uuid1, "memory.memsw.limit_in_bytes"))
	if err != nil || string(b) != strconv.Itoa(256<<20) {
		t.Errorf("parent memsw limit %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.cgRoot, "cpu", "nca", uuid1, "cpu.cfs_quota_us")); string(b) != "100000" {
		t.Errorf("parent cfs quota %q", b)
	}
	if err := e.d.Spawn(ctx, inst(uuid1), nil); !errors.Is(err, driver.ErrExists) {
		t.Errorf("second spawn: %v", err)
	}
}

func TestSpawnFailureCleansUp(t *testing.T) {
	e := newEnv(t)
	boom := errors.New("ovs down")
	err := e.d.Spawn(context.Background(), inst(uuid1), func(context.Context, string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("spawn error %v", err)
	}
	if n := e.f.ContainerNames(); len(n) != 0 {
		t.Errorf("left behind: %v", n)
	}
	bad := inst(uuid1)
	bad.Image = "nca-test/missing:1"
	if err := e.d.Spawn(context.Background(), bad, nil); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
	if n := e.f.ContainerNames(); len(n) != 0 {
		t.Errorf("left behind after missing image: %v", n)
	}
	if _, err := os.Stat(filepath.Join(e.cgRoot, "memory", "nca", uuid1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("parent cgroup left behind: %v", err)
	}
	bad = inst("not-a-uuid")
	if err := e.d.Spawn(context.Background(), bad, nil); !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("bad uuid: %v", err)
	}
}

func TestLXCFSPolicy(t *testing.T) {
	e := newEnv(t, driver.WithRequireLXCFS(true))
	if err := e.d.Spawn(context.Background(), inst(uuid1), nil); !errors.Is(err, driver.ErrLXCFS) {
		t.Errorf("required lxcfs missing: %v", err)
	}
	e = newEnv(t, driver.WithLXCFSCheck(func(string) error { return nil }))
	e.f.CheckBindSources = false
	if err := e.d.Spawn(context.Background(), inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	r, _ := e.f.ContainerInspect(context.Background(), "nca-"+uuid1, client.ContainerInspectOptions{})
	if len(r.Container.HostConfig.Mounts) != len(spec.LXCFSFiles) {
		t.Errorf("lxcfs mounts %d", len(r.Container.HostConfig.Mounts))
	}
	e = newEnv(t) // degrade: boots without the mounts
	if err := e.d.Spawn(context.Background(), inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	r, _ = e.f.ContainerInspect(context.Background(), "nca-"+uuid1, client.ContainerInspectOptions{})
	if len(r.Container.HostConfig.Mounts) != 0 {
		t.Errorf("degraded spawn has mounts %v", r.Container.HostConfig.Mounts)
	}
}

func watch(t *testing.T, d *driver.Driver) (<-chan driver.Event, context.CancelFunc) {
	ch := make(chan driver.Event, 64)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = d.Watch(ctx, func(ev driver.Event) { ch <- ev }) }()
	t.Cleanup(cancel)
	return ch, cancel
}

func waitKind(t *testing.T, ch <-chan driver.Event, kind driver.EventKind) driver.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

func TestGuestRebootPoweroffCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	ch, _ := watch(t, e.d)
	time.Sleep(50 * time.Millisecond) // let Watch subscribe
	_, sbPid, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
	_, pid, _ := e.inspect(t, "nca-"+uuid1)

	if err := e.f.GuestExit("nca-"+uuid1, spec.ExitReboot); err != nil {
		t.Fatal(err)
	}
	ev := waitKind(t, ch, driver.EventRebooted)
	if ev.Err != nil || ev.UUID != uuid1 || ev.Power != spec.Running {
		t.Errorf("reboot event %+v", ev)
	}
	up, pid2, _ := e.inspect(t, "nca-"+uuid1)
	_, sbPid2, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
	if !up || pid2 == pid || sbPid2 != sbPid {
		t.Errorf("after in-guest reboot: running %v pid %d→%d sandbox %d→%d", up, pid, pid2, sbPid, sbPid2)
	}

	if err := e.f.GuestExit("nca-"+uuid1, spec.ExitPoweroff); err != nil {
		t.Fatal(err)
	}
	ev = waitKind(t, ch, driver.EventStopped)
	if ev.Power != spec.Shutdown || ev.ExitCode != 130 {
		t.Errorf("poweroff event %+v", ev)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Shutdown || st.Reason != spec.ReasonPoweroff {
		t.Errorf("after poweroff %+v", st)
	}
	if err := e.d.PowerOn(ctx, uuid1, nil); err != nil {
		t.Fatal(err)
	}
	waitKind(t, ch, driver.EventStarted)
	if err := e.f.GuestExit("nca-"+uuid1, 1); err != nil {
		t.Fatal(err)
	}
	if ev := waitKind(t, ch, driver.EventStopped); ev.Power != spec.Crashed {
		t.Errorf("crash event %+v", ev)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Crashed {
		t.Errorf("after crash %+v", st)
	}
}

// A sandbox restarted while its guest runs leaves the guest in the old namespace; the guest's
// next own reboot joins the new, empty one, so the driver must plug it through WithReplug.
func TestGuestRebootAfterSandboxRestartReplugs(t *testing.T) {
	type call struct{ id, netns string }
	calls := make(chan call, 4)
	e := newEnv(t, driver.WithReplug(func(_ context.Context, id, netns string) error {
		calls <- call{id, netns}
		return nil
	}))
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), func(context.Context, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ch, _ := watch(t, e.d)
	time.Sleep(50 * time.Millisecond) // let Watch subscribe

	// An in-guest reboot with the same sandbox needs no plug.
	if err := e.f.GuestExit("nca-"+uuid1, spec.ExitReboot); err != nil {
		t.Fatal(err)
	}
	if ev := waitKind(t, ch, driver.EventRebooted); ev.Err != nil {
		t.Fatalf("reboot event %+v", ev)
	}
	select {
	case c := <-calls:
		t.Fatalf("replug called with the same sandbox: %+v", c)
	default:
	}

	sb := "nca-" + uuid1 + "-sandbox"
	if _, err := e.f.ContainerKill(ctx, sb, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.ContainerStart(ctx, sb, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	_, sbPid, _ := e.inspect(t, sb)
	if err := e.f.GuestExit("nca-"+uuid1, spec.ExitReboot); err != nil {
		t.Fatal(err)
	}
	if ev := waitKind(t, ch, driver.EventRebooted); ev.Err != nil || ev.Power != spec.Running {
		t.Fatalf("reboot event %+v", ev)
	}
	select {
	case c := <-calls:
		want := fmt.Sprintf("/%d/ns/net", sbPid)
		if c.id != uuid1 || !strings.HasSuffix(c.netns, want) {
			t.Errorf("replug(%q, %q), want %s and a path ending in %s", c.id, c.netns, uuid1, want)
		}
	default:
		t.Fatal("guest rebooted into a new sandbox namespace without a replug")
	}
}

func TestPowerOffOnReboot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	calls := 0
	plug := func(context.Context, string) error { calls++; return nil }
	if err := e.d.Spawn(ctx, inst(uuid1), plug); err != nil {
		t.Fatal(err)
	}
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Shutdown || !st.SandboxRunning {
		t.Errorf("after power off %+v", st)
	}
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Errorf("power off twice: %v", err)
	}
	if err := e.d.PowerOn(ctx, uuid1, plug); err != nil || calls != 1 {
		t.Fatalf("power on: %v (plug calls %d)", err, calls)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Running {
		t.Errorf("after power on %+v", st)
	}
	// Host-reboot-like: the sandbox died; power on restarts and re-plugs.
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.ContainerKill(ctx, "nca-"+uuid1+"-sandbox", client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.SandboxNetNS(ctx, uuid1); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("netns of a dead sandbox: %v", err)
	}
	if err := e.d.PowerOn(ctx, uuid1, plug); err != nil || calls != 2 {
		t.Fatalf("power on after sandbox death: %v (plug calls %d)", err, calls)
	}
	// Host-reboot-like, dockerd side: the restart policy already brought
	// the sandbox back (new, empty namespace) before the agent powers on.
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.ContainerKill(ctx, "nca-"+uuid1+"-sandbox", client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.ContainerStart(ctx, "nca-"+uuid1+"-sandbox", client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.PowerOn(ctx, uuid1, plug); err != nil || calls != 3 {
		t.Fatalf("power on after dockerd restarted the sandbox: %v (plug calls %d)", err, calls)
	}
	if err := e.d.PowerOn(ctx, uuid1, plug); err != nil || calls != 3 {
		t.Fatalf("power on of a running instance re-plugged: %v (plug calls %d)", err, calls)
	}
	_, sbPid, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
	for _, hard := range []bool{false, true} {
		_, pid, _ := e.inspect(t, "nca-"+uuid1)
		if err := e.d.Reboot(ctx, uuid1, hard, time.Second, plug); err != nil {
			t.Fatalf("reboot hard=%v: %v", hard, err)
		}
		up, pid2, _ := e.inspect(t, "nca-"+uuid1)
		_, sbPid2, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
		if !up || pid2 == pid || sbPid2 != sbPid || calls != 3 {
			t.Errorf("reboot hard=%v: up %v pid %d→%d sandbox %d→%d plug calls %d", hard, up, pid, pid2, sbPid, sbPid2, calls)
		}
	}
	if err := e.d.PowerOff(ctx, uuid2, time.Second); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("power off unknown: %v", err)
	}
}

func TestPauseSuspend(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		op   func(context.Context, string) error
		want spec.PowerState
	}{
		{e.d.Pause, spec.Paused}, {e.d.Pause, spec.Paused}, {e.d.Unpause, spec.Running},
		{e.d.Suspend, spec.Suspended}, {e.d.Resume, spec.Running}, {e.d.Unpause, spec.Running},
	}
	for i, s := range steps {
		if err := s.op(ctx, uuid1); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if st := e.state1(t, uuid1); st.Power != s.want {
			t.Errorf("step %d: %v, want %v", i, st.Power, s.want)
		}
	}
	if err := e.d.Suspend(ctx, uuid1); err != nil {
		t.Fatal(err)
	}
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Fatalf("power off a suspended guest: %v", err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Shutdown {
		t.Errorf("suspended then off: %+v", st)
	}
	if err := e.d.Pause(ctx, uuid1); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("pause stopped: %v", err)
	}
}

func TestDestroyIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Suspend(ctx, uuid1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.Destroy(ctx, uuid1); err != nil {
			t.Fatalf("destroy %d: %v", i, err)
		}
	}
	if n := e.f.ContainerNames(); len(n) != 0 {
		t.Errorf("left: %v", n)
	}
	if _, err := os.Stat(filepath.Join(e.cgRoot, "memory", "nca", uuid1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup parent left: %v", err)
	}
	if ents, _ := os.ReadDir(e.state); len(ents) != 0 {
		t.Errorf("markers left: %v", ents)
	}
	if st := e.state1(t, uuid1); st.Power != spec.NoState || st.Reason != spec.ReasonMissing {
		t.Errorf("state of destroyed %+v", st)
	}
}

func TestListInstances(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{uuid2, uuid1} {
		if err := e.d.Spawn(ctx, inst(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.d.PowerOff(ctx, uuid2, time.Second); err != nil {
		t.Fatal(err)
	}
	// Not ours: another owner, and an unlabelled container.
	other := spec.DefaultOptions()
	other.OwnerKey, other.SandboxImage, other.NamePrefix = "someone-else", e.d.SpecOptions().SandboxImage, "x-"
	s, _ := spec.Sandbox(inst("11111111-2222-4333-8444-555555555555"), other)
	if _, err := e.f.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: s.Config, HostConfig: s.HostConfig}); err != nil {
		t.Fatal(err)
	}
	l, err := e.d.ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].UUID != uuid1 || l[1].UUID != uuid2 {
		t.Fatalf("list %+v", l)
	}
	if !l[0].HasInstance || !l[0].SandboxUp || l[0].State != "running" || l[0].Image != "img-1" || l[0].Flavor != "m1.tiny" {
		t.Errorf("entry %+v", l[0])
	}
	if l[1].State != "exited" || !l[1].SandboxUp {
		t.Errorf("stopped entry %+v", l[1])
	}
}

func TestConsoleLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.f.WriteConsole("nca-"+uuid1, "l1\nl2\nl3 \xff\nlogin: "); err != nil {
		t.Fatal(err)
	}
	out, err := e.d.ConsoleLog(ctx, uuid1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if out != "l3 \uFFFD\nlogin: " {
		t.Errorf("console %q", out)
	}
	if all, err := e.d.ConsoleLog(ctx, uuid1, 0); err != nil || !strings.HasSuffix(all, "l1\nl2\nl3 \uFFFD\nlogin: ") || !strings.Contains(all, "Welcome") {
		t.Errorf("whole console %q %v", all, err)
	}
	if _, err := e.d.ConsoleLog(ctx, uuid2, 10); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("console of unknown: %v", err)
	}
}

func TestDiagnostics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	_, sbPid, _ := e.inspect(t, "nca-"+uuid1+"-sandbox")
	dir := filepath.Join(e.proc, strconv.Itoa(sbPid), "net")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	netdev := "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1500 10 1 2 0 0 0 0 900 7 0 3 0 0 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "dev"), []byte(netdev), 0o644); err != nil {
		t.Fatal(err)
	}
	dg, err := e.d.Diagnostics(ctx, uuid1)
	if err != nil {
		t.Fatal(err)
	}
	if dg.MemoryLimit != 256<<20 || dg.MemoryBytes != 10<<20 || dg.MemoryCache != 3<<20 || dg.CPUTimeNs == 0 {
		t.Errorf("diagnostics %+v", dg)
	}
	if len(dg.NICs) != 1 || dg.NICs[0] != (driver.NICStats{Name: "eth0", RxBytes: 1500, RxPackets: 10, RxErrors: 1, RxDrop: 2, TxBytes: 900, TxPackets: 7, TxDrop: 3}) {
		t.Errorf("nics %+v", dg.NICs)
	}
	if err := e.d.PowerOff(ctx, uuid1, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Diagnostics(ctx, uuid1); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("diagnostics of stopped: %v", err)
	}
}

func TestSnapshotPausesWhileStreaming(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	rc, err := e.d.Snapshot(ctx, uuid1)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Paused {
		t.Errorf("during snapshot: %v", st.Power)
	}
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["sbin/init"] || !names["root/.ssh/authorized_keys"] {
		t.Errorf("snapshot entries %v", names)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Running {
		t.Errorf("after snapshot: %v", st.Power)
	}
	// A paused instance stays paused.
	if err := e.d.Pause(ctx, uuid1); err != nil {
		t.Fatal(err)
	}
	rc, err = e.d.Snapshot(ctx, uuid1)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if st := e.state1(t, uuid1); st.Power != spec.Paused {
		t.Errorf("paused instance after snapshot: %v", st.Power)
	}
}

func TestRebuildKeepsSandbox(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	importImage(t, e.f, "nca-test/guest:2", "two")
	_, sbPid, sbID := e.inspect(t, "nca-"+uuid1+"-sandbox")
	_, _, ctID := e.inspect(t, "nca-"+uuid1)
	ni := inst(uuid1)
	ni.Image, ni.ImageID = "nca-test/guest:2", "img-2"
	if err := e.d.Rebuild(ctx, ni, func(context.Context, string) error { t.Error("plug on rebuild with a live sandbox"); return nil }); err != nil {
		t.Fatal(err)
	}
	up, _, ctID2 := e.inspect(t, "nca-"+uuid1)
	_, sbPid2, sbID2 := e.inspect(t, "nca-"+uuid1+"-sandbox")
	if !up || ctID2 == ctID || sbID2 != sbID || sbPid2 != sbPid {
		t.Errorf("rebuild: up %v ct %s→%s sandbox %s→%s", up, ctID[:8], ctID2[:8], sbID[:8], sbID2[:8])
	}
	if _, data, _ := e.f.File("nca-"+uuid1, "/etc/marker"); string(data) != "two" {
		t.Errorf("rebuilt from the old image: marker %q", data)
	}
	if err := e.d.Rebuild(ctx, inst(uuid2), nil); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("rebuild unknown: %v", err)
	}
}

func TestNewChecksDaemon(t *testing.T) {
	f := drivertest.NewFake()
	f.APIVersion = "1.40"
	_, err := driver.New(context.Background(), f, driver.WithStateDir(t.TempDir()), driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if !errors.Is(err, driver.ErrDaemon) {
		t.Errorf("API 1.40: %v", err)
	}
	e := newEnv(t)
	if c := e.d.Capabilities(); c.RootDiskEnforced || !strings.Contains(c.RootDiskReason, "not enforced") || c.APIVersion != "1.41" {
		t.Errorf("extfs capabilities %+v", c)
	}
	f = drivertest.NewFake()
	f.Backing = "xfs"
	importImage(t, f, "nca-test/guest:1", "one")
	d, err := driver.New(context.Background(), f, driver.WithStateDir(t.TempDir()), driver.WithCgroups(driver.HostCgroupsV1{Root: t.TempDir()}),
		driver.WithLXCFSCheck(func(string) error { return errors.New("no") }), driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Capabilities().RootDiskEnforced {
		t.Error("xfs backing not detected")
	}
	if err := d.Spawn(context.Background(), inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	r, _ := f.ContainerInspect(context.Background(), "nca-"+uuid1, client.ContainerInspectOptions{})
	if r.Container.HostConfig.StorageOpt["size"] != "1G" {
		t.Errorf("storage opt %v", r.Container.HostConfig.StorageOpt)
	}
}

func TestPauseELFRuns(t *testing.T) {
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		t.Skip("the sandbox binary is x86-64 Linux only; this host cannot execute it")
	}
	bin, err := driver.PauseELF("amd64")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(p, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p)
	if err := cmd.Start(); err != nil {
		t.Fatalf("exec pause binary: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause binary exited: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	_ = cmd.Process.Kill()
	<-done
	if _, err := driver.PauseELF("arm64"); !errors.Is(err, driver.ErrUnsupported) {
		t.Errorf("arm64: %v", err)
	}
}

func TestCgroupsV1OnDir(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"memory", "cpu,cpuacct", "pids", "blkio"} {
		_ = os.Mkdir(filepath.Join(root, c), 0o755)
	}
	_ = os.Symlink("cpu,cpuacct", filepath.Join(root, "cpu"))
	_ = os.Symlink("cpu,cpuacct", filepath.Join(root, "cpuacct"))
	cg := driver.HostCgroupsV1{Root: root}
	ctx := context.Background()
	files := spec.ParentLimits(spec.Flavor{VCPUs: 2, MemoryMB: 128}, 100)
	if err := cg.Apply(ctx, "/nca/"+uuid1, files); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "cpu,cpuacct", "nca", uuid1, "cpu.cfs_quota_us")); string(b) != "200000" {
		t.Errorf("quota %q", b)
	}
	// Docker creates the parent in every controller; Remove must find them.
	_ = os.MkdirAll(filepath.Join(root, "blkio", "nca", uuid1, "leaf"), 0o755)
	if err := cg.Remove(ctx, "/nca/"+uuid1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"memory", "cpu,cpuacct", "pids", "blkio"} {
		if _, err := os.Stat(filepath.Join(root, c, "nca", uuid1)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s parent left: %v", c, err)
		}
	}
	if err := cg.Apply(ctx, "/", files); !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("root parent accepted: %v", err)
	}
}

func TestConcurrentOperations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := []string{uuid1, uuid2, "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f"}
	errs := make(chan error, 64)
	for _, id := range ids {
		go func() { errs <- e.d.Spawn(ctx, inst(id), nil) }()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 8; i++ {
		go func() {
			var err error
			switch i % 4 {
			case 0:
				err = e.d.Pause(ctx, uuid1)
			case 1:
				err = e.d.Unpause(ctx, uuid1)
			case 2:
				_, err = e.d.GetState(ctx, uuid1)
			case 3:
				err = e.d.Reboot(ctx, uuid1, i%2 == 1, time.Second, nil)
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent op: %v", err)
		}
	}
	for _, id := range ids {
		if err := e.d.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.f.ContainerNames(); len(n) != 0 {
		t.Errorf("left: %v", n)
	}
}
