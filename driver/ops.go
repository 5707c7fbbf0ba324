package driver

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// firstTarFile returns the content of the first regular file in a tar
// stream (what CopyFromContainer sends for one path), or nil if none.
func firstTarFile(r io.Reader, limit int64) ([]byte, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > limit {
			return nil, fmt.Errorf("%s is %d bytes, over the %d limit", h.Name, h.Size, limit)
		}
		data, err := io.ReadAll(io.LimitReader(tr, limit))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", h.Name, err)
		}
		return data, nil
	}
}

func timeoutSeconds(t time.Duration) *int {
	s := int((t + time.Second - 1) / time.Second)
	if s < 0 {
		s = 0
	}
	return &s
}

// unpauseIfPaused thaws a frozen instance; stop and kill on a frozen
// cgroup would otherwise wait for a thaw that never comes.
func (d *Driver) unpauseIfPaused(ctx context.Context, name string) error {
	c, err := d.inspect(ctx, name)
	if err != nil {
		return err
	}
	if c.State != nil && c.State.Paused {
		if _, err := d.api.ContainerUnpause(ctx, name, client.ContainerUnpauseOptions{}); err != nil {
			return translate(err, "unpause "+name)
		}
	}
	return nil
}

// PowerOff shuts the guest down cleanly: SIGRTMIN+3 (systemd's halt), then
// SIGKILL after timeout. The sandbox keeps running so the ports stay
// plugged for the next PowerOn.
func (d *Driver) PowerOff(ctx context.Context, id string, timeout time.Duration) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	if err := d.unpauseIfPaused(ctx, name); err != nil {
		return fmt.Errorf("power off %s: %w", id, err)
	}
	if err := d.setMarker(id, markSuspended, false); err != nil {
		return err
	}
	// Marker first: the die event arrives before ContainerStop returns.
	if err := d.setMarker(id, markStopped, true); err != nil {
		return err
	}
	// No Signal option: API 1.41 has no signal parameter on stop; the
	// container's StopSignal (SIGRTMIN+3) is used.
	if _, err := d.api.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: timeoutSeconds(timeout)}); err != nil {
		return fmt.Errorf("power off %s: %w", id, translate(err, "stop "+name))
	}
	return nil
}

// PowerOn boots a stopped instance. If the sandbox is not running (host
// reboot), it is started first and plug is called with the new namespace.
func (d *Driver) PowerOn(ctx context.Context, id string, plug PlugFunc) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	return d.powerOnLocked(ctx, id, plug)
}

func (d *Driver) powerOnLocked(ctx context.Context, id string, plug PlugFunc) error {
	name, _ := d.names(id)
	if err := d.ensureSandbox(ctx, id, plug); err != nil {
		return fmt.Errorf("power on %s: %w", id, err)
	}
	if err := d.setMarker(id, markStopped, false); err != nil {
		return err
	}
	c, err := d.inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("power on %s: %w", id, err)
	}
	if running(c) {
		return nil
	}
	if err := d.start(ctx, name); err != nil {
		return fmt.Errorf("power on %s: %w", id, err)
	}
	return nil
}

// Reboot restarts the guest. Soft: clean shutdown (SIGRTMIN+3) with up to
// timeout to finish, then SIGKILL, then start — docker restart does exactly
// that sequence. Hard: SIGKILL and start. The sandbox and its network
// namespace survive either way; if it is gone, it is restarted and plug is
// called.
func (d *Driver) Reboot(ctx context.Context, id string, hard bool, timeout time.Duration, plug PlugFunc) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	if err := d.ensureSandbox(ctx, id, plug); err != nil {
		return fmt.Errorf("reboot %s: %w", id, err)
	}
	if err := d.unpauseIfPaused(ctx, name); err != nil {
		return fmt.Errorf("reboot %s: %w", id, err)
	}
	for _, m := range []string{markSuspended, markStopped} {
		if err := d.setMarker(id, m, false); err != nil {
			return err
		}
	}
	if hard {
		timeout = 0
	}
	if _, err := d.api.ContainerRestart(ctx, name, client.ContainerRestartOptions{Timeout: timeoutSeconds(timeout)}); err != nil {
		return fmt.Errorf("reboot %s: %w", id, translate(err, "restart "+name))
	}
	return nil
}

// Pause freezes every process of the guest (cgroup freezer).
func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.freeze(ctx, id, false)
}

// Unpause thaws a paused guest.
func (d *Driver) Unpause(ctx context.Context, id string) error {
	return d.thaw(ctx, id)
}

// Suspend freezes the guest like Pause and reports SUSPENDED. Without CRIU
// (checkpoint is experimental in dockerd and unavailable here) nothing can
// be saved to disk, so suspend keeps what an operator expects a resumed VM
// to have — every process, open connection, tmpfs and page of RAM — and
// releases CPU only: memory stays charged to the instance (placement keeps
// a suspended instance's allocation anyway). The stop-based alternative
// would free RAM but reboot the guest on resume, which is a power cycle,
// not a resume.
func (d *Driver) Suspend(ctx context.Context, id string) error {
	return d.freeze(ctx, id, true)
}

// Resume thaws a suspended guest.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.thaw(ctx, id)
}

func (d *Driver) freeze(ctx context.Context, id string, suspend bool) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return err
	}
	if !running(c) {
		return fmt.Errorf("pause %s: %w", id, ErrNotRunning)
	}
	if err := d.setMarker(id, markSuspended, suspend); err != nil {
		return err
	}
	if c.State.Paused {
		return nil
	}
	if _, err := d.api.ContainerPause(ctx, name, client.ContainerPauseOptions{}); err != nil {
		_ = d.setMarker(id, markSuspended, false)
		return fmt.Errorf("pause %s: %w", id, translate(err, "pause "+name))
	}
	return nil
}

func (d *Driver) thaw(ctx context.Context, id string) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	if err := d.unpauseIfPaused(ctx, name); err != nil {
		return fmt.Errorf("unpause %s: %w", id, err)
	}
	return d.setMarker(id, markSuspended, false)
}

// State is an instance's power state as nova sees it, plus why.
type State struct {
	Power          spec.PowerState
	Reason         spec.Reason
	ExitCode       int
	SandboxRunning bool
	StartedAt      string
	FinishedAt     string
}

// GetState inspects the instance. A missing instance is NOSTATE with
// ReasonMissing, not an error (nova's sync asks about deleted guests too).
func (d *Driver) GetState(ctx context.Context, id string) (State, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return State{}, err
	}
	name, sb := d.names(id)
	c, err := d.inspect(ctx, name)
	if errors.Is(err, ErrNotFound) {
		p, r := spec.MapState(spec.ContainerState{})
		return State{Power: p, Reason: r}, nil
	}
	if err != nil {
		return State{}, err
	}
	st := State{}
	cs := spec.ContainerState{Exists: true, Suspended: d.hasMarker(id, markSuspended), AgentStopped: d.hasMarker(id, markStopped)}
	if c.State != nil {
		cs.Status = string(c.State.Status)
		cs.Running, cs.Paused, cs.Restarting = c.State.Running, c.State.Paused, c.State.Restarting
		cs.OOMKilled, cs.ExitCode = c.State.OOMKilled, c.State.ExitCode
		st.ExitCode, st.StartedAt, st.FinishedAt = c.State.ExitCode, c.State.StartedAt, c.State.FinishedAt
	}
	st.Power, st.Reason = spec.MapState(cs)
	if s, err := d.inspect(ctx, sb); err == nil && running(s) {
		st.SandboxRunning = true
	} else if st.Power == spec.Running {
		st.Reason = spec.ReasonSandboxDown
	}
	return st, nil
}

// Listed is one instance found in Docker by its owner label.
type Listed struct {
	UUID        string
	InstanceID  string // empty if only the sandbox exists
	SandboxID   string // empty if only the instance container exists
	Image       string
	Flavor      string
	State       string // docker status of the instance container
	SandboxUp   bool
	HasInstance bool
}

// ListInstances returns every instance this agent owns (LabelOwner), for
// init_host adoption and orphan cleanup, sorted by uuid.
func (d *Driver) ListInstances(ctx context.Context) ([]Listed, error) {
	res, err := d.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", spec.LabelOwner+"="+d.opts.OwnerKey),
	})
	if err != nil {
		return nil, translate(err, "list containers")
	}
	by := map[string]*Listed{}
	for _, c := range res.Items {
		id := c.Labels[spec.LabelInstance]
		if spec.ValidateUUID(id) != nil {
			continue
		}
		l := by[id]
		if l == nil {
			l = &Listed{UUID: id}
			by[id] = l
		}
		switch c.Labels[spec.LabelRole] {
		case spec.RoleSandbox:
			l.SandboxID = c.ID
			l.SandboxUp = c.State == container.StateRunning
		case spec.RoleInstance:
			l.InstanceID, l.HasInstance = c.ID, true
			l.Image, l.Flavor, l.State = c.Labels[spec.LabelImage], c.Labels[spec.LabelFlavor], string(c.State)
		}
	}
	out := make([]Listed, 0, len(by))
	for _, l := range by {
		out = append(out, *l)
	}
	sortListed(out)
	return out, nil
}

func sortListed(l []Listed) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].UUID < l[j-1].UUID; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// maxConsoleBytes bounds what ConsoleLog reads from dockerd; the json-file
// log of an instance is capped at 2 x 1 MiB by its LogConfig anyway.
const maxConsoleBytes = 4 << 20

// ConsoleLog returns the last lines of the guest console (the pty PID 1
// writes to), or all of it when lines <= 0, as nova's get_console_output
// wants: valid UTF-8, bad bytes replaced.
func (d *Driver) ConsoleLog(ctx context.Context, id string, lines int) (string, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return "", err
	}
	tail := "all" // nova passes no tail_length for the whole log
	if lines > 0 {
		tail = strconv.Itoa(lines)
	}
	name, _ := d.names(id)
	rc, err := d.api.ContainerLogs(ctx, name, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
	if err != nil {
		return "", translate(err, "console log of "+name)
	}
	defer rc.Close()
	// Tty containers send the raw stream, without stdcopy framing.
	data, err := io.ReadAll(io.LimitReader(rc, maxConsoleBytes))
	if err != nil {
		return "", fmt.Errorf("read console log of %s: %w", name, err)
	}
	return strings.ToValidUTF8(string(data), "\uFFFD"), nil
}

// Diagnostics are an instance's counters (nova get_instance_diagnostics).
type Diagnostics struct {
	CPUTimeNs   uint64
	PerCPUNs    []uint64
	MemoryBytes uint64 // usage minus inactive page cache, as docker stats shows
	MemoryLimit uint64
	MemoryCache uint64 // page cache charged to the instance (total_cache on v1)
	Pids        uint64
	NICs        []NICStats
	// StartedAt is when the guest's PID 1 last started (its uptime's origin).
	StartedAt time.Time
}

// Diagnostics reads one stats sample of the instance container and the
// interface counters of its sandbox namespace.
func (d *Driver) Diagnostics(ctx context.Context, id string) (Diagnostics, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return Diagnostics{}, err
	}
	name, sb := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return Diagnostics{}, err
	}
	if !running(c) {
		return Diagnostics{}, fmt.Errorf("diagnostics of %s: %w", id, ErrNotRunning)
	}
	started, _ := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	res, err := d.api.ContainerStats(ctx, name, client.ContainerStatsOptions{Stream: false})
	if err != nil {
		return Diagnostics{}, translate(err, "stats of "+name)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&s); err != nil {
		return Diagnostics{}, fmt.Errorf("decode stats of %s: %w", name, err)
	}
	out := Diagnostics{
		CPUTimeNs:   s.CPUStats.CPUUsage.TotalUsage,
		PerCPUNs:    s.CPUStats.CPUUsage.PercpuUsage,
		MemoryLimit: s.MemoryStats.Limit,
		Pids:        s.PidsStats.Current,
		StartedAt:   started,
	}
	// docker stats shows usage minus inactive page cache. systemd puts
	// every process in a child cgroup, so on v1 only the hierarchical
	// total_* counters see them (the plain "cache" of the container's own
	// cgroup stays 0); v2 counters are hierarchical and unprefixed.
	st := s.MemoryStats.Stats
	inactive, ok := st["total_inactive_file"]
	if !ok {
		inactive = st["inactive_file"]
	}
	if out.MemoryCache, ok = st["total_cache"]; !ok {
		out.MemoryCache = st["file"]
	}
	out.MemoryBytes = s.MemoryStats.Usage
	if inactive < out.MemoryBytes {
		out.MemoryBytes -= inactive
	}
	if sbc, err := d.inspect(ctx, sb); err == nil && running(sbc) {
		data, err := os.ReadFile(filepath.Join(d.procRoot, strconv.Itoa(sbc.State.Pid), "net", "dev"))
		if err == nil {
			out.NICs = ParseNetDev(data)
		} else {
			d.log.DebugContext(ctx, "no interface counters", "instance", id, "error", err)
		}
	}
	return out, nil
}

// Rebuild replaces the instance container with one from inst (a new image,
// same uuid) and boots it, keeping the sandbox, its namespace and the
// plugged ports. plug runs only if the sandbox had to be restarted.
func (d *Driver) Rebuild(ctx context.Context, inst spec.Instance, plug PlugFunc) error {
	if err := spec.Validate(inst, d.opts); err != nil {
		return err
	}
	defer d.lock(inst.UUID)()
	name, _ := d.names(inst.UUID)
	if _, err := d.inspect(ctx, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", inst.UUID, err)
	}
	opts := d.opts
	var err error
	if opts.LXCFSDir, err = d.lxcfsDir(ctx, inst.UUID); err != nil {
		return err
	}
	ctSpec, err := spec.Container(inst, opts)
	if err != nil {
		return err
	}
	if err := d.ensureSandbox(ctx, inst.UUID, plug); err != nil {
		return fmt.Errorf("rebuild %s: %w", inst.UUID, err)
	}
	if err := d.remove(ctx, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", inst.UUID, err)
	}
	for _, m := range []string{markSuspended, markStopped} {
		if err := d.setMarker(inst.UUID, m, false); err != nil {
			return err
		}
	}
	if err := d.createInstance(ctx, inst, ctSpec); err != nil {
		return fmt.Errorf("rebuild %s: %w", inst.UUID, err)
	}
	if err := d.start(ctx, name); err != nil {
		return fmt.Errorf("rebuild %s: %w", inst.UUID, err)
	}
	return nil
}

// Snapshot streams the instance's filesystem as a tar (docker export). A
// running guest is frozen for the whole stream so the tar is a consistent
// point in time, and thawed when the returned reader is closed (or the
// stream fails to open). The caller must Close it. Note that docker export
// drops every xattr but security.capability and shows Docker's own
// /etc/hostname, /etc/hosts and /etc/resolv.conf.
func (d *Driver) Snapshot(ctx context.Context, id string) (io.ReadCloser, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return nil, err
	}
	unlock := d.lock(id)
	defer unlock()
	name, _ := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	paused := false
	if running(c) && !c.State.Paused {
		if _, err := d.api.ContainerPause(ctx, name, client.ContainerPauseOptions{}); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", id, translate(err, "pause "+name))
		}
		paused = true
	}
	thaw := func() error {
		if !paused {
			return nil
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := d.api.ContainerUnpause(tctx, name, client.ContainerUnpauseOptions{}); err != nil {
			return fmt.Errorf("thaw %s after snapshot: %w", id, translate(err, "unpause "+name))
		}
		return nil
	}
	rc, err := d.api.ContainerExport(ctx, name, client.ContainerExportOptions{})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("snapshot %s: %w", id, translate(err, "export "+name)), thaw())
	}
	return &thawOnClose{ReadCloser: rc, thaw: thaw}, nil
}

type thawOnClose struct {
	io.ReadCloser
	thaw func() error
	once sync.Once
	err  error
}

func (t *thawOnClose) Close() error {
	t.once.Do(func() { t.err = errors.Join(t.ReadCloser.Close(), t.thaw()) })
	return t.err
}
