package drivertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// Conformance checks the Docker behaviours the driver relies on. The fake
// and a real dockerd 20.10 must both pass it; only the sandbox image (which
// the suite imports itself) is needed, so it runs on a bare daemon.
func Conformance(t *testing.T, api driver.DockerAPI) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rb := make([]byte, 4)
	_, _ = rand.Read(rb)
	tag := hex.EncodeToString(rb)
	owner := "nca-conformance-" + tag
	sbName, ctName := "nca-test-conf-"+tag+"-sb", "nca-test-conf-"+tag+"-ct"
	t.Cleanup(func() {
		for _, n := range []string{ctName, sbName} {
			_, _ = api.ContainerRemove(context.Background(), n, client.ContainerRemoveOptions{Force: true})
		}
	})

	ping, err := api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil || ping.APIVersion == "" {
		t.Fatalf("ping: %+v %v", ping, err)
	}
	img, err := driver.EnsureSandboxImage(ctx, api, runtime.GOARCH)
	if err != nil {
		t.Fatalf("import sandbox image: %v", err)
	}
	if again, err := driver.EnsureSandboxImage(ctx, api, runtime.GOARCH); err != nil || again != img {
		t.Fatalf("second EnsureSandboxImage = %q, %v; want %q", again, err, img)
	}
	labels := map[string]string{spec.LabelOwner: owner, "conformance": tag}

	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	evs := api.Events(evCtx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("label", spec.LabelOwner+"="+owner)})
	waitEvent := func(action events.Action, id string) events.Message {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-evs.Messages:
				if m.Action == action && m.Actor.ID == id {
					if m.Actor.Attributes["conformance"] != tag {
						t.Errorf("event %s lacks the container's labels: %v", action, m.Actor.Attributes)
					}
					return m
				}
			case err := <-evs.Err:
				t.Fatalf("event stream: %v", err)
			case <-deadline:
				t.Fatalf("no %s event for %s", action, id)
			}
		}
	}

	// Sandbox-like container: network none, pause binary.
	pids := int64(8)
	sb, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: sbName,
		Config:     &container.Config{Image: img, Cmd: []string{spec.SandboxCmd}, Hostname: "conf-" + tag, Labels: labels},
		HostConfig: &container.HostConfig{NetworkMode: "none", CapDrop: []string{"ALL"}, ReadonlyRootfs: true, Resources: container.Resources{Memory: 16 << 20, MemorySwap: 16 << 20, PidsLimit: &pids}}})
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	waitEvent(events.ActionCreate, sb.ID)
	if _, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: sbName, Config: &container.Config{Image: img, Cmd: []string{spec.SandboxCmd}}}); !cerrdefs.IsConflict(err) {
		t.Errorf("duplicate name: want conflict, got %v", err)
	}
	if _, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: sbName + "-x", Config: &container.Config{Image: "nca/no-such-image:" + tag}}); !cerrdefs.IsNotFound(err) {
		t.Errorf("missing image: want not found, got %v", err)
	}
	st := inspect(ctx, t, api, sbName)
	if st.State.Status != container.StateCreated || st.State.Running || st.ID != sb.ID {
		t.Errorf("after create: %+v", st.State)
	}
	list, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", spec.LabelOwner+"="+owner)})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != sb.ID || list.Items[0].Labels["conformance"] != tag {
		t.Errorf("list by label: %+v %v", list.Items, err)
	}

	// Joining a namespace: hostname conflicts, a stopped owner refuses.
	join := &container.HostConfig{NetworkMode: container.NetworkMode("container:" + sbName), Resources: container.Resources{Memory: 32 << 20, MemorySwap: 32 << 20}}
	if _, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: ctName, Config: &container.Config{Image: img, Cmd: []string{spec.SandboxCmd}, Hostname: "x", Labels: labels}, HostConfig: join}); err == nil {
		t.Errorf("hostname with network container: mode accepted")
		_, _ = api.ContainerRemove(ctx, ctName, client.ContainerRemoveOptions{Force: true})
	}
	ct, err := api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: ctName, Config: &container.Config{Image: img, Cmd: []string{spec.SandboxCmd}, Labels: labels}, HostConfig: join})
	if err != nil {
		t.Fatalf("create joining container: %v", err)
	}
	if _, err := api.ContainerStart(ctx, ctName, client.ContainerStartOptions{}); err == nil {
		t.Errorf("start joining a created (not running) sandbox succeeded")
	}

	// Start, idempotent start.
	if _, err := api.ContainerStart(ctx, sbName, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	waitEvent(events.ActionStart, sb.ID)
	if _, err := api.ContainerStart(ctx, sbName, client.ContainerStartOptions{}); err != nil {
		t.Errorf("start of a running container must succeed: %v", err)
	}
	st = inspect(ctx, t, api, sbName)
	if !st.State.Running || st.State.Pid <= 0 || st.Config.Hostname != "conf-"+tag {
		t.Errorf("sandbox after start: %+v hostname %q", st.State, st.Config.Hostname)
	}
	sbPid := st.State.Pid

	// Copy a file with owner and mode in before the first start, read it back.
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/u/.ssh/", Mode: 0o700, Uid: 1000, Gid: 1000, ModTime: time.Now()})
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "home/u/.ssh/authorized_keys", Mode: 0o600, Uid: 1000, Gid: 1000, Size: 4, ModTime: time.Now()})
	_, _ = tw.Write([]byte("key\n"))
	_ = tw.Close()
	if _, err := api.CopyToContainer(ctx, ctName, client.CopyToContainerOptions{DestinationPath: "/", Content: &in}); err != nil {
		t.Fatalf("copy to created container: %v", err)
	}
	got, err := api.CopyFromContainer(ctx, ctName, client.CopyFromContainerOptions{SourcePath: "/home/u/.ssh/authorized_keys"})
	if err != nil {
		t.Fatalf("copy from container: %v", err)
	}
	hdr, data := readOne(t, got.Content)
	if string(data) != "key\n" || hdr.Uid != 1000 || hdr.Gid != 1000 || hdr.FileInfo().Mode().Perm() != 0o600 || hdr.Name != "authorized_keys" {
		t.Errorf("copied file: name %q uid %d gid %d mode %v data %q", hdr.Name, hdr.Uid, hdr.Gid, hdr.FileInfo().Mode(), data)
	}
	if _, err := api.CopyFromContainer(ctx, ctName, client.CopyFromContainerOptions{SourcePath: "/etc/no-such-file-" + tag}); !cerrdefs.IsNotFound(err) {
		t.Errorf("copy of a missing path: want not found, got %v", err)
	}

	// The joining container runs once its sandbox does.
	if _, err := api.ContainerStart(ctx, ctName, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start joining container: %v", err)
	}
	waitEvent(events.ActionStart, ct.ID)

	// Pause / unpause state machine.
	if _, err := api.ContainerPause(ctx, ctName, client.ContainerPauseOptions{}); err != nil {
		t.Fatalf("pause: %v", err)
	}
	waitEvent(events.ActionPause, ct.ID)
	if st := inspect(ctx, t, api, ctName); !st.State.Paused || !st.State.Running || st.State.Status != container.StatePaused {
		t.Errorf("after pause: %+v", st.State)
	}
	if _, err := api.ContainerPause(ctx, ctName, client.ContainerPauseOptions{}); !cerrdefs.IsConflict(err) {
		t.Errorf("double pause: want conflict, got %v", err)
	}
	if _, err := api.ContainerUnpause(ctx, ctName, client.ContainerUnpauseOptions{}); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	waitEvent(events.ActionUnPause, ct.ID)
	// dockerd 20.10 answers 500, not 409, here: only "an error" is portable.
	if _, err := api.ContainerUnpause(ctx, ctName, client.ContainerUnpauseOptions{}); err == nil {
		t.Errorf("double unpause succeeded")
	}

	// Export contains the image's and the copied files.
	exp, err := api.ContainerExport(ctx, ctName, client.ContainerExportOptions{})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	names := tarNames(t, exp)
	for _, want := range []string{"pause", "home/u/.ssh/authorized_keys"} {
		if !names[want] {
			t.Errorf("export lacks %s (has %d entries)", want, len(names))
		}
	}

	// Stats: one sample with the memory limit.
	stats, err := api.ContainerStats(ctx, ctName, client.ContainerStatsOptions{Stream: false})
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var sr container.StatsResponse
	err = json.NewDecoder(stats.Body).Decode(&sr)
	stats.Body.Close()
	if err != nil || sr.MemoryStats.Limit != 32<<20 || sr.MemoryStats.Usage == 0 {
		t.Errorf("stats: limit %d usage %d err %v", sr.MemoryStats.Limit, sr.MemoryStats.Usage, err)
	}

	// Restart with timeout 0: killed and started again, new pid.
	before := inspect(ctx, t, api, ctName).State.Pid
	zero := 0
	if _, err := api.ContainerRestart(ctx, ctName, client.ContainerRestartOptions{Timeout: &zero}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if st := inspect(ctx, t, api, ctName); !st.State.Running || st.State.Pid == before {
		t.Errorf("after restart: %+v (pid before %d)", st.State, before)
	}
	if st := inspect(ctx, t, api, sbName); st.State.Pid != sbPid {
		t.Errorf("restarting the joining container changed the sandbox pid %d → %d", sbPid, st.State.Pid)
	}

	// Stop: the pause binary ignores the stop signal; killed after the
	// timeout → 137, and a die event carrying exitCode.
	one := 1
	if _, err := api.ContainerStop(ctx, ctName, client.ContainerStopOptions{Timeout: &one}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	die := waitEvent(events.ActionDie, ct.ID)
	if die.Actor.Attributes["exitCode"] != "137" {
		t.Errorf("die event exitCode %q, want 137", die.Actor.Attributes["exitCode"])
	}
	if st := inspect(ctx, t, api, ctName); st.State.Running || st.State.ExitCode != 137 || st.State.Status != container.StateExited {
		t.Errorf("after stop: %+v", st.State)
	}
	if _, err := api.ContainerStop(ctx, ctName, client.ContainerStopOptions{Timeout: &one}); err != nil {
		t.Errorf("stop of a stopped container must succeed: %v", err)
	}
	if _, err := api.ContainerPause(ctx, ctName, client.ContainerPauseOptions{}); err == nil {
		t.Errorf("pause of a stopped container succeeded")
	}

	// Kill.
	if _, err := api.ContainerKill(ctx, sbName, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if d := waitEvent(events.ActionDie, sb.ID); d.Actor.Attributes["exitCode"] != "137" {
		t.Errorf("kill exitCode %q", d.Actor.Attributes["exitCode"])
	}

	// Remove: running needs force; removing twice is not found.
	if _, err := api.ContainerStart(ctx, sbName, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("restart sandbox: %v", err)
	}
	if _, err := api.ContainerRemove(ctx, sbName, client.ContainerRemoveOptions{}); !cerrdefs.IsConflict(err) {
		t.Errorf("remove running without force: want conflict, got %v", err)
	}
	if _, err := api.ContainerRemove(ctx, ctName, client.ContainerRemoveOptions{}); err != nil {
		t.Errorf("remove stopped: %v", err)
	}
	waitEvent(events.ActionDestroy, ct.ID)
	if _, err := api.ContainerRemove(ctx, sbName, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Errorf("force remove running: %v", err)
	}
	if _, err := api.ContainerRemove(ctx, sbName, client.ContainerRemoveOptions{Force: true}); !cerrdefs.IsNotFound(err) {
		t.Errorf("remove twice: want not found, got %v", err)
	}
	if _, err := api.ContainerInspect(ctx, ctName, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect removed: want not found, got %v", err)
	}
}

func inspect(ctx context.Context, t *testing.T, api driver.DockerAPI, name string) container.InspectResponse {
	t.Helper()
	r, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return r.Container
}

func readOne(t *testing.T, r io.ReadCloser) (*tar.Header, []byte) {
	t.Helper()
	defer r.Close()
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		t.Fatalf("read tar: %v", err)
	}
	data, _ := io.ReadAll(tr)
	return h, data
}

func tarNames(t *testing.T, r io.ReadCloser) map[string]bool {
	t.Helper()
	defer r.Close()
	out := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read export: %v", err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = true
	}
}
