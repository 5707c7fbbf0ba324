package drivertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

// Fake is an in-memory dockerd speaking the subset of the Engine API the
// driver uses, with the state rules of Docker 20.10 (API 1.41) that the
// driver depends on: names are unique, joining another container's network
// needs it running and forbids a hostname, pause/unpause/remove conflict
// with the wrong state, stop uses the container's StopSignal, copies and
// exports work on a per-container file tree, and every change is an event.
//
// Its "processes" are simulated: a container whose PID 1 is /sbin/init acts
// like systemd (the stop signal SIGRTMIN+3 ends it with exit 130, as a
// clean poweroff does with CAP_SYS_BOOT); anything else acts like the
// sandbox's pause binary (ignores catchable signals, dies at the kill after
// the stop timeout: exit 137). GuestExit simulates a reboot or poweroff
// from inside the guest.
type Fake struct {
	mu      sync.Mutex
	images  map[string]*fakeImage // by ref and by ID
	ctrs    map[string]*fakeCtr   // by ID
	names   map[string]string     // name → ID
	nextPid int
	nextID  int
	history []events.Message
	subs    map[int]*subscriber
	nextSub int
	execs   map[string]*fakeExec

	// APIVersion is what Ping reports (default 1.41).
	APIVersion string
	// StorageDriver and Backing are reported by Info (overlay2 on extfs).
	StorageDriver, Backing string
	// CheckBindSources makes create fail, like dockerd, when a bind
	// mount's source path does not exist on this machine (default true).
	CheckBindSources bool
}

type fileEntry struct {
	hdr  tar.Header
	data []byte
}

type fakeImage struct {
	id    string
	refs  []string
	files map[string]*fileEntry
}

type fakeCtr struct {
	id       string
	name     string
	image    *fakeImage
	config   container.Config
	host     container.HostConfig
	state    container.State
	files    map[string]*fileEntry
	console  []byte
	created  time.Time
	restarts int
	cpuNs    uint64
}

type subscriber struct {
	ch      chan events.Message
	filters client.Filters
}

var _ driver.DockerAPI = (*Fake)(nil)

// NewFake returns an empty fake daemon.
func NewFake() *Fake {
	return &Fake{
		images:           map[string]*fakeImage{},
		ctrs:             map[string]*fakeCtr{},
		names:            map[string]string{},
		nextPid:          1000,
		subs:             map[int]*subscriber{},
		APIVersion:       "1.41",
		StorageDriver:    "overlay2",
		Backing:          "extfs",
		CheckBindSources: true,
	}
}

func notFound(format string, a ...any) error {
	return cerrdefs.ErrNotFound.WithMessage(fmt.Sprintf(format, a...))
}

func conflict(format string, a ...any) error {
	return cerrdefs.ErrConflict.WithMessage(fmt.Sprintf(format, a...))
}

func invalid(format string, a ...any) error {
	return cerrdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(format, a...))
}

// lookup finds a container by name, "/name", full ID or unique ID prefix.
func (f *Fake) lookup(ref string) (*fakeCtr, error) {
	ref = strings.TrimPrefix(ref, "/")
	if id, ok := f.names[ref]; ok {
		return f.ctrs[id], nil
	}
	if c, ok := f.ctrs[ref]; ok {
		return c, nil
	}
	var found *fakeCtr
	if len(ref) >= 4 {
		for id, c := range f.ctrs {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil, invalid("multiple IDs found with provided prefix: %s", ref)
				}
				found = c
			}
		}
	}
	if found == nil {
		return nil, notFound("No such container: %s", ref)
	}
	return found, nil
}

func (f *Fake) emit(c *fakeCtr, action events.Action, extra map[string]string) {
	now := time.Now()
	attrs := map[string]string{"name": c.name, "image": c.config.Image}
	for k, v := range c.config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	m := events.Message{
		Type:     events.ContainerEventType,
		Action:   action,
		Actor:    events.Actor{ID: c.id, Attributes: attrs},
		Scope:    "local",
		Time:     now.Unix(),
		TimeNano: now.UnixNano(),
	}
	f.history = append(f.history, m)
	for _, s := range f.subs {
		if matches(s.filters, m) {
			s.ch <- m // buffered; see Events
		}
	}
}

func matches(fl client.Filters, m events.Message) bool {
	for key, vals := range fl {
		ok := false
		for v := range vals {
			switch key {
			case "type":
				ok = ok || string(m.Type) == v
			case "label":
				k, want, hasVal := strings.Cut(v, "=")
				got, present := m.Actor.Attributes[k]
				ok = ok || (present && (!hasVal || got == want))
			case "container":
				ok = ok || m.Actor.ID == v || m.Actor.Attributes["name"] == v
			case "event":
				ok = ok || string(m.Action) == v
			default:
				return false
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Ping implements driver.DockerAPI.
func (f *Fake) Ping(ctx context.Context, _ client.PingOptions) (client.PingResult, error) {
	if err := ctx.Err(); err != nil {
		return client.PingResult{}, err
	}
	return client.PingResult{APIVersion: f.APIVersion, OSType: "linux"}, nil
}

// Info implements driver.DockerAPI.
func (f *Fake) Info(ctx context.Context, _ client.InfoOptions) (client.SystemInfoResult, error) {
	if err := ctx.Err(); err != nil {
		return client.SystemInfoResult{}, err
	}
	return client.SystemInfoResult{Info: system.Info{
		Driver:        f.StorageDriver,
		DriverStatus:  [][2]string{{"Backing Filesystem", f.Backing}},
		CgroupDriver:  "cgroupfs",
		CgroupVersion: "1",
		OSType:        "linux",
		Architecture:  "x86_64",
	}}, nil
}

func normalizeRef(ref string) string {
	if !strings.Contains(path.Base(ref), ":") && !strings.HasPrefix(ref, "sha256:") {
		return ref + ":latest"
	}
	return ref
}

// ImageInspect implements driver.DockerAPI.
func (f *Fake) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[normalizeRef(ref)]
	if !ok {
		img, ok = f.images[ref]
	}
	if !ok {
		return client.ImageInspectResult{}, notFound("No such image: %s", ref)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: img.id, RepoTags: append([]string(nil), img.refs...)}}, nil
}

// ImageImport implements driver.DockerAPI: the tar becomes the image's
// file tree.
func (f *Fake) ImageImport(ctx context.Context, src client.ImageImportSource, ref string, _ client.ImageImportOptions) (client.ImageImportResult, error) {
	if src.SourceName != "-" || src.Source == nil {
		return nil, invalid("only import from the request body is supported")
	}
	data, err := io.ReadAll(src.Source)
	if err != nil {
		return nil, fmt.Errorf("read import body: %w", err)
	}
	files := map[string]*fileEntry{"/": {hdr: tar.Header{Typeflag: tar.TypeDir, Name: "/", Mode: 0o755}}}
	if err := extract(files, "/", bytes.NewReader(data)); err != nil {
		return nil, invalid("import: %v", err)
	}
	sum := sha256.Sum256(data)
	id := "sha256:" + hex.EncodeToString(sum[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[id]
	if !ok {
		img = &fakeImage{id: id, files: files}
		f.images[id] = img
	}
	if ref != "" {
		r := normalizeRef(ref)
		img.refs = append(img.refs, r)
		f.images[r] = img
	}
	return io.NopCloser(strings.NewReader(fmt.Sprintf("{\"status\":%q}\n", id))), nil
}

// knownCaps are the capability names dockerd 20.10 accepts.
const knownCaps = `CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
	SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
	AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
	PERFMON BPF CHECKPOINT_RESTORE`

func checkCaps(list []string) error {
	for _, c := range list {
		n := strings.ToUpper(c)
		if n == "ALL" {
			continue
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if !slices.Contains(strings.Fields(knownCaps), strings.TrimPrefix(n, "CAP_")) {
			return invalid("unknown capability: %q", c)
		}
	}
	return nil
}

// ContainerCreate implements driver.DockerAPI.
func (f *Fake) ContainerCreate(ctx context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ContainerCreateResult{}, err
	}
	cfg := container.Config{}
	if o.Config != nil {
		cfg = *o.Config
	}
	if o.Image != "" {
		cfg.Image = o.Image
	}
	hc := container.HostConfig{}
	if o.HostConfig != nil {
		hc = *o.HostConfig
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(hc.Annotations) > 0 {
		return client.ContainerCreateResult{}, invalid("HostConfig.Annotations needs API 1.43; this daemon speaks %s", f.APIVersion)
	}
	if err := checkCaps(hc.CapAdd); err != nil {
		return client.ContainerCreateResult{}, err
	}
	if err := checkCaps(hc.CapDrop); err != nil {
		return client.ContainerCreateResult{}, err
	}
	if o.Name != "" {
		if _, dup := f.names[o.Name]; dup {
			return client.ContainerCreateResult{}, conflict("Conflict. The container name \"/%s\" is already in use", o.Name)
		}
	}
	img, ok := f.images[normalizeRef(cfg.Image)]
	if !ok {
		img, ok = f.images[cfg.Image]
	}
	if !ok {
		return client.ContainerCreateResult{}, notFound("No such image: %s", cfg.Image)
	}
	if other, isCtr := strings.CutPrefix(string(hc.NetworkMode), "container:"); isCtr {
		if cfg.Hostname != "" {
			return client.ContainerCreateResult{}, invalid("conflicting options: hostname and the network mode")
		}
		if _, err := f.lookup(other); err != nil {
			return client.ContainerCreateResult{}, err
		}
	}
	if size, ok := hc.StorageOpt["size"]; ok && size != "" && !(f.StorageDriver == "overlay2" && f.Backing == "xfs") {
		return client.ContainerCreateResult{}, invalid("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
	}
	if f.CheckBindSources {
		for _, m := range hc.Mounts {
			if m.Type == "bind" {
				if _, err := os.Stat(m.Source); err != nil {
					return client.ContainerCreateResult{}, invalid("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
				}
			}
		}
	}
	f.nextID++
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d-%d", o.Name, f.nextID, time.Now().UnixNano())))
	id := hex.EncodeToString(sum[:])
	name := o.Name
	if name == "" {
		name = "fake_" + id[:8]
	}
	files := make(map[string]*fileEntry, len(img.files))
	for p, e := range img.files {
		cp := *e
		files[p] = &cp
	}
	c := &fakeCtr{id: id, name: name, image: img, config: cfg, host: hc, files: files, created: time.Now(),
		state: container.State{Status: container.StateCreated}}
	f.ctrs[id] = c
	f.names[name] = id
	f.emit(c, events.ActionCreate, nil)
	return client.ContainerCreateResult{ID: id}, nil
}

func (c *fakeCtr) isInit() bool {
	argv := append(append([]string(nil), c.config.Entrypoint...), c.config.Cmd...)
	return len(argv) > 0 && argv[0] == "/sbin/init"
}

// ContainerStart implements driver.DockerAPI.
func (f *Fake) ContainerStart(ctx context.Context, ref string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ContainerStartResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerStartResult{}, err
	}
	return client.ContainerStartResult{}, f.startLocked(c)
}

func (f *Fake) startLocked(c *fakeCtr) error {
	if c.state.Paused {
		return conflict("cannot start a paused container, try unpause instead")
	}
	if c.state.Running {
		return nil // dockerd answers 304 Not Modified
	}
	if other, isCtr := strings.CutPrefix(string(c.host.NetworkMode), "container:"); isCtr {
		nc, err := f.lookup(other)
		if err != nil {
			return err
		}
		if !nc.state.Running {
			return conflict("cannot join network of a non running container: %s", nc.id)
		}
	}
	f.nextPid++
	if c.state.Status != container.StateCreated {
		c.restarts++
	}
	c.state = container.State{Status: container.StateRunning, Running: true, Pid: f.nextPid, StartedAt: time.Now().UTC().Format(time.RFC3339Nano), FinishedAt: c.state.FinishedAt}
	if c.isInit() {
		c.console = append(c.console, []byte("\r\nWelcome to Fake GNU/Linux!\r\n\r\n")...)
	}
	f.emit(c, events.ActionStart, nil)
	return nil
}

// exitLocked ends PID 1 with code and emits die.
func (f *Fake) exitLocked(c *fakeCtr, code int) {
	c.state = container.State{Status: container.StateExited, ExitCode: code, StartedAt: c.state.StartedAt, FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	f.emit(c, events.ActionDie, map[string]string{"exitCode": fmt.Sprint(code)})
}

// stopLocked delivers the stop signal: init halts cleanly (130), the pause
// binary ignores it and is killed when the timeout expires (137).
func (f *Fake) stopLocked(c *fakeCtr) {
	if !c.state.Running {
		return
	}
	if c.state.Paused {
		c.state.Paused = false
		c.state.Status = container.StateRunning
		f.emit(c, events.ActionUnPause, nil)
	}
	sig := c.config.StopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	if c.isInit() && sig == "SIGRTMIN+3" {
		f.exitLocked(c, 130)
		return
	}
	f.emit(c, events.ActionKill, map[string]string{"signal": "9"})
	f.exitLocked(c, 137)
}

// ContainerStop implements driver.DockerAPI.
func (f *Fake) ContainerStop(ctx context.Context, ref string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	if o.Signal != "" {
		return client.ContainerStopResult{}, invalid("the signal parameter of stop needs API 1.42; this daemon speaks %s", f.APIVersion)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerStopResult{}, err
	}
	f.stopLocked(c)
	return client.ContainerStopResult{}, nil
}

// ContainerKill implements driver.DockerAPI. Only SIGKILL ends a simulated
// process; other signals are delivered and ignored.
func (f *Fake) ContainerKill(ctx context.Context, ref string, o client.ContainerKillOptions) (client.ContainerKillResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerKillResult{}, err
	}
	if !c.state.Running {
		return client.ContainerKillResult{}, conflict("Container %s is not running", c.id)
	}
	sig := o.Signal
	if sig == "" {
		sig = "SIGKILL"
	}
	f.emit(c, events.ActionKill, map[string]string{"signal": sig})
	if sig == "SIGKILL" || sig == "KILL" || sig == "9" {
		c.state.Paused = false
		f.exitLocked(c, 137)
	}
	return client.ContainerKillResult{}, nil
}

// ContainerRestart implements driver.DockerAPI.
func (f *Fake) ContainerRestart(ctx context.Context, ref string, o client.ContainerRestartOptions) (client.ContainerRestartResult, error) {
	if o.Signal != "" {
		return client.ContainerRestartResult{}, invalid("the signal parameter of restart needs API 1.42; this daemon speaks %s", f.APIVersion)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerRestartResult{}, err
	}
	if o.Timeout != nil && *o.Timeout == 0 && c.state.Running {
		c.state.Paused = false
		f.exitLocked(c, 137)
	} else {
		f.stopLocked(c)
	}
	if err := f.startLocked(c); err != nil {
		return client.ContainerRestartResult{}, err
	}
	f.emit(c, events.ActionRestart, nil)
	return client.ContainerRestartResult{}, nil
}

// ContainerRemove implements driver.DockerAPI.
func (f *Fake) ContainerRemove(ctx context.Context, ref string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerRemoveResult{}, err
	}
	if c.state.Running {
		if !o.Force {
			return client.ContainerRemoveResult{}, conflict("You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.id)
		}
		c.state.Paused = false
		f.emit(c, events.ActionKill, map[string]string{"signal": "9"})
		f.exitLocked(c, 137)
	}
	delete(f.ctrs, c.id)
	delete(f.names, c.name)
	f.emit(c, events.ActionDestroy, nil)
	return client.ContainerRemoveResult{}, nil
}

// ContainerUpdate implements driver.DockerAPI with dockerd's rule that a
// zero value leaves a limit unchanged, and its check that the swap limit is
// not below the memory limit.
func (f *Fake) ContainerUpdate(ctx context.Context, ref string, o client.ContainerUpdateOptions) (client.ContainerUpdateResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ContainerUpdateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerUpdateResult{}, err
	}
	if o.Resources == nil {
		return client.ContainerUpdateResult{}, nil
	}
	r, cur := *o.Resources, &c.host.Resources
	mem, swap := cur.Memory, cur.MemorySwap
	if r.Memory != 0 {
		mem = r.Memory
	}
	if r.MemorySwap != 0 {
		swap = r.MemorySwap
	}
	if mem > 0 && swap > 0 && swap < mem {
		return client.ContainerUpdateResult{}, invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	cur.Memory, cur.MemorySwap = mem, swap
	if r.CPUPeriod != 0 {
		cur.CPUPeriod = r.CPUPeriod
	}
	if r.CPUQuota != 0 {
		cur.CPUQuota = r.CPUQuota
	}
	if r.CpusetCpus != "" {
		cur.CpusetCpus = r.CpusetCpus
	}
	if r.PidsLimit != nil {
		p := *r.PidsLimit
		cur.PidsLimit = &p
	}
	return client.ContainerUpdateResult{}, nil
}

// ContainerInspect implements driver.DockerAPI.
func (f *Fake) ContainerInspect(ctx context.Context, ref string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ContainerInspectResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerInspectResult{}, err
	}
	st := c.state
	cfg := c.config
	hc := c.host
	return client.ContainerInspectResult{Container: container.InspectResponse{
		ID:           c.id,
		Name:         "/" + c.name,
		Created:      c.created.UTC().Format(time.RFC3339Nano),
		Image:        c.image.id,
		State:        &st,
		Config:       &cfg,
		HostConfig:   &hc,
		RestartCount: c.restarts,
		Driver:       f.StorageDriver,
	}}, nil
}

// ContainerList implements driver.DockerAPI (filters: label, name, id).
func (f *Fake) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Summary
	for _, c := range f.ctrs {
		if !o.All && !c.state.Running {
			continue
		}
		m := events.Message{Actor: events.Actor{ID: c.id, Attributes: map[string]string{"name": c.name}}}
		for k, v := range c.config.Labels {
			m.Actor.Attributes[k] = v
		}
		keep := true
		for key, vals := range o.Filters {
			switch key {
			case "label":
				keep = keep && matches(client.Filters{"label": vals}, m)
			case "name", "id":
				hit := false
				for v := range vals {
					hit = hit || strings.Contains(c.name, strings.TrimPrefix(v, "/")) || strings.HasPrefix(c.id, v)
				}
				keep = keep && hit
			default:
				return client.ContainerListResult{}, invalid("invalid filter '%s'", key)
			}
		}
		if !keep {
			continue
		}
		labels := map[string]string{}
		for k, v := range c.config.Labels {
			labels[k] = v
		}
		out = append(out, container.Summary{ID: c.id, Names: []string{"/" + c.name}, Image: c.config.Image, ImageID: c.image.id,
			Created: c.created.Unix(), Labels: labels, State: c.state.Status})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created > out[j].Created || (out[i].Created == out[j].Created && out[i].ID < out[j].ID)
	})
	return client.ContainerListResult{Items: out}, nil
}

// ContainerPause implements driver.DockerAPI.
func (f *Fake) ContainerPause(ctx context.Context, ref string, _ client.ContainerPauseOptions) (client.ContainerPauseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerPauseResult{}, err
	}
	if !c.state.Running {
		return client.ContainerPauseResult{}, conflict("Container %s is not running", c.id)
	}
	if c.state.Paused {
		return client.ContainerPauseResult{}, conflict("Container %s is already paused", c.id)
	}
	c.state.Paused = true
	c.state.Status = container.StatePaused
	f.emit(c, events.ActionPause, nil)
	return client.ContainerPauseResult{}, nil
}

// ContainerUnpause implements driver.DockerAPI.
func (f *Fake) ContainerUnpause(ctx context.Context, ref string, _ client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerUnpauseResult{}, err
	}
	if !c.state.Paused {
		// dockerd 20.10 returns a 500 here, not a 409.
		return client.ContainerUnpauseResult{}, cerrdefs.ErrInternal.WithMessage(fmt.Sprintf("Container %s is not paused", c.id))
	}
	c.state.Paused = false
	c.state.Status = container.StateRunning
	f.emit(c, events.ActionUnPause, nil)
	return client.ContainerUnpauseResult{}, nil
}

// ContainerLogs implements driver.DockerAPI: Tail counts lines; a Tty
// container's stream is raw, others are stdcopy-framed on stdout.
func (f *Fake) ContainerLogs(ctx context.Context, ref string, o client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return nil, err
	}
	data := tailLines(c.console, o.Tail)
	if !c.config.Tty && len(data) > 0 {
		hdr := []byte{1, 0, 0, 0, byte(len(data) >> 24), byte(len(data) >> 16), byte(len(data) >> 8), byte(len(data))}
		data = append(hdr, data...)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func tailLines(data []byte, tail string) []byte {
	if tail == "" || tail == "all" {
		return append([]byte(nil), data...)
	}
	var n int
	if _, err := fmt.Sscan(tail, &n); err != nil || n < 0 {
		return append([]byte(nil), data...)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, nil)
}

// ContainerStats implements driver.DockerAPI with a synthetic sample.
func (f *Fake) ContainerStats(ctx context.Context, ref string, o client.ContainerStatsOptions) (client.ContainerStatsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ContainerStatsResult{}, err
	}
	limit := uint64(c.host.Memory)
	if limit == 0 {
		limit = 24 << 30
	}
	var s container.StatsResponse
	if c.state.Running {
		c.cpuNs += 1_000_000
		s.CPUStats.CPUUsage.TotalUsage = c.cpuNs
		s.MemoryStats = container.MemoryStats{Usage: 12 << 20, Limit: limit, Stats: map[string]uint64{"cache": 0, "total_cache": 3 << 20, "total_inactive_file": 2 << 20}}
		s.PidsStats.Current = 7
	}
	body, err := json.Marshal(s)
	if err != nil {
		return client.ContainerStatsResult{}, err
	}
	return client.ContainerStatsResult{Body: io.NopCloser(bytes.NewReader(body))}, nil
}

// ContainerExport implements driver.DockerAPI: the container's tree as tar.
func (f *Fake) ContainerExport(ctx context.Context, ref string, _ client.ContainerExportOptions) (client.ContainerExportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return nil, err
	}
	data, err := archive(c.files, "/", "")
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// CopyToContainer implements driver.DockerAPI: extracts the tar under the
// destination directory, which must exist.
func (f *Fake) CopyToContainer(ctx context.Context, ref string, o client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
	data, err := io.ReadAll(o.Content)
	if err != nil {
		return client.CopyToContainerResult{}, fmt.Errorf("read copy body: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.CopyToContainerResult{}, err
	}
	dst := path.Clean("/" + o.DestinationPath)
	if e, ok := c.files[dst]; !ok || e.hdr.Typeflag != tar.TypeDir {
		return client.CopyToContainerResult{}, notFound("Could not find the file %s in container %s", o.DestinationPath, c.id)
	}
	if err := extract(c.files, dst, bytes.NewReader(data)); err != nil {
		return client.CopyToContainerResult{}, invalid("extract: %v", err)
	}
	return client.CopyToContainerResult{}, nil
}

// CopyFromContainer implements driver.DockerAPI: a tar of one path named by
// its base name, as dockerd sends it.
func (f *Fake) CopyFromContainer(ctx context.Context, ref string, o client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.CopyFromContainerResult{}, err
	}
	src := path.Clean("/" + o.SourcePath)
	e, ok := c.files[src]
	if !ok {
		return client.CopyFromContainerResult{}, notFound("Could not find the file %s in container %s", o.SourcePath, c.id)
	}
	data, err := archive(c.files, src, path.Base(src))
	if err != nil {
		return client.CopyFromContainerResult{}, err
	}
	return client.CopyFromContainerResult{
		Content: io.NopCloser(bytes.NewReader(data)),
		Stat:    container.PathStat{Name: path.Base(src), Size: e.hdr.Size, Mode: e.hdr.FileInfo().Mode(), Mtime: e.hdr.ModTime},
	}, nil
}

// Events implements driver.DockerAPI. Since replays the history from that
// time; the stream ends when ctx does.
func (f *Fake) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	f.mu.Lock()
	var replay []events.Message
	if o.Since != "" {
		var sec, nsec int64
		if _, err := fmt.Sscanf(o.Since, "%d.%d", &sec, &nsec); err != nil {
			if _, err := fmt.Sscanf(o.Since, "%d", &sec); err != nil {
				f.mu.Unlock()
				errs <- invalid("bad since %q", o.Since)
				close(errs)
				return client.EventsResult{Messages: msgs, Err: errs}
			}
		}
		since := sec*1e9 + nsec
		for _, m := range f.history {
			if m.TimeNano >= since && matches(o.Filters, m) {
				replay = append(replay, m)
			}
		}
	}
	// A generous buffer keeps emit non-blocking under the lock; a consumer
	// that falls 4096 events behind is a test bug.
	sub := &subscriber{ch: make(chan events.Message, 4096), filters: o.Filters.Clone()}
	id := f.nextSub
	f.nextSub++
	f.subs[id] = sub
	f.mu.Unlock()
	go func() {
		defer func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
		}()
		for _, m := range replay {
			select {
			case msgs <- m:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			case m := <-sub.ch:
				select {
				case msgs <- m:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			}
		}
	}()
	return client.EventsResult{Messages: msgs, Err: errs}
}

// ---- test hooks (not part of the Docker API) ----

// GuestExit simulates PID 1 of a running container exiting by itself with
// code (129 in-guest reboot, 130 poweroff, anything else a crash).
func (f *Fake) GuestExit(ref string, code int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return err
	}
	if !c.state.Running || c.state.Paused {
		return conflict("container %s is not running unpaused", c.id)
	}
	f.exitLocked(c, code)
	return nil
}

// WriteConsole appends text to a container's console output.
func (f *Fake) WriteConsole(ref, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return err
	}
	c.console = append(c.console, text...)
	return nil
}

// File returns a file of a container's tree with its header.
func (f *Fake) File(ref, p string) (tar.Header, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return tar.Header{}, nil, err
	}
	e, ok := c.files[path.Clean("/"+p)]
	if !ok {
		return tar.Header{}, nil, notFound("no file %s", p)
	}
	return e.hdr, append([]byte(nil), e.data...), nil
}

// ContainerNames lists the names of all containers, sorted.
func (f *Fake) ContainerNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ---- file trees ----

// extract applies a tar stream under dir. Entry names are confined to the
// tree: ".." cannot climb above dir.
func extract(files map[string]*fileEntry, dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := path.Join(dir, path.Clean("/"+h.Name))
		parent := path.Dir(p)
		if pe, ok := files[parent]; p != "/" && (!ok || pe.hdr.Typeflag != tar.TypeDir) {
			// dockerd creates missing parents as root-owned 0755 directories.
			for _, anc := range ancestors(parent) {
				if _, ok := files[anc]; !ok {
					files[anc] = &fileEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: anc, Mode: 0o755, ModTime: time.Now()}}
				}
			}
		}
		hdr := *h
		hdr.Name = p
		var data []byte
		if h.Typeflag == tar.TypeReg {
			if data, err = io.ReadAll(tr); err != nil {
				return err
			}
		}
		files[p] = &fileEntry{hdr: hdr, data: data}
	}
}

func ancestors(p string) []string {
	var out []string
	for p != "/" && p != "." {
		out = append([]string{p}, out...)
		p = path.Dir(p)
	}
	return out
}

// archive writes the subtree at root; entry names start with prefix.
func archive(files map[string]*fileEntry, root, prefix string) ([]byte, error) {
	var paths []string
	for p := range files {
		if p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/") {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := files[p]
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		name := path.Join(prefix, rel)
		if name == "" || name == "." {
			continue // the root of an export
		}
		hdr := e.hdr
		hdr.Name = name
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
