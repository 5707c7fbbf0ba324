package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// PlugFunc wires an instance's ports into the network namespace at
// netnsPath. The driver calls it after the sandbox has started and before
// the instance's PID 1 runs, so the guest boots with its interfaces present.
type PlugFunc func(ctx context.Context, netnsPath string) error

// Capabilities reports what this host enforces, detected at New.
type Capabilities struct {
	APIVersion string
	// RootDiskEnforced is true only when the storage driver can cap a
	// container's writable layer (overlay2 on xfs mounted with pquota).
	RootDiskEnforced bool
	// RootDiskReason says why not, for the operator.
	RootDiskReason string
	StorageDriver  string
}

// Driver runs nova instances as VM-like containers. All methods are safe for
// concurrent use; operations on one instance are serialised.
type Driver struct {
	api       DockerAPI
	log       *slog.Logger
	opts      spec.Options
	cgroups   Cgroups
	stateDir  string
	procRoot  string
	lxcfsOK   func(dir string) error
	requireFS bool
	goarch    string
	caps      Capabilities
	diskProbe bool // trust xfs backing as pquota-capable
	replug    Replug

	mu    sync.Mutex
	locks map[string]*instLock
}

// instLock serialises operations on one instance; refs counts holders and
// waiters so the entry is dropped when nobody needs it (a long-lived agent
// sees many short-lived instances).
type instLock struct {
	mu   sync.Mutex
	refs int
}

// Option configures New.
type Option func(*Driver)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// WithSpecOptions replaces the container spec options (names, owner key,
// lxcfs dir, cgroup parent root, pids default, stop timeout). SandboxImage
// is filled in by New.
func WithSpecOptions(o spec.Options) Option { return func(d *Driver) { d.opts = o } }

// WithCgroups sets where the per-instance parent limits are written
// (default HostCgroupsV1{Root: "/sys/fs/cgroup"}).
func WithCgroups(c Cgroups) Option { return func(d *Driver) { d.cgroups = c } }

// WithStateDir sets the directory for the driver's few markers (suspended,
// powered off by the agent); default /var/lib/nova-container-agent/driver.
func WithStateDir(dir string) Option { return func(d *Driver) { d.stateDir = dir } }

// WithProcRoot sets where host /proc is (default /proc); SandboxNetNS paths
// and interface counters are read below it.
func WithProcRoot(dir string) Option { return func(d *Driver) { d.procRoot = dir } }

// WithLXCFSCheck replaces the probe that decides whether lxcfs is usable.
func WithLXCFSCheck(f func(dir string) error) Option { return func(d *Driver) { d.lxcfsOK = f } }

// WithRequireLXCFS makes Spawn fail with ErrLXCFS when lxcfs is not mounted,
// instead of booting the instance without the /proc overlays.
func WithRequireLXCFS(require bool) Option { return func(d *Driver) { d.requireFS = require } }

// Replug wires instance id's ports into a new, empty sandbox namespace. The
// driver calls it when it restarts a guest on its own (an in-guest reboot)
// and finds the sandbox was restarted since the last plug: only the caller
// knows the instance's ports.
type Replug func(ctx context.Context, id, netns string) error

// WithReplug sets the plug step used when an operation was given no
// PlugFunc. Without it such an instance boots with no interfaces (and a
// warning) after a sandbox restart.
func WithReplug(f Replug) Option { return func(d *Driver) { d.replug = f } }

// WithArch sets the architecture of the sandbox binary (default runtime.GOARCH).
func WithArch(goarch string) Option { return func(d *Driver) { d.goarch = goarch } }

// New pings dockerd (negotiating the API version down to the daemon's, and
// failing loudly below MinAPIVersion), checks the host's cgroup version and
// storage driver, and imports the sandbox image if missing.
func New(ctx context.Context, api DockerAPI, opts ...Option) (*Driver, error) {
	d := &Driver{
		api:      api,
		log:      slog.Default(),
		opts:     spec.DefaultOptions(),
		cgroups:  HostCgroupsV1{Root: "/sys/fs/cgroup"},
		stateDir: "/var/lib/nova-container-agent/driver",
		procRoot: "/proc",
		lxcfsOK:  CheckLXCFS,
		goarch:   runtime.GOARCH,
		locks:    map[string]*instLock{},
	}
	for _, o := range opts {
		o(d)
	}
	ping, err := api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return nil, fmt.Errorf("ping docker: %w: %w", ErrDaemon, err)
	}
	if !versionAtLeast(ping.APIVersion, MinAPIVersion) {
		return nil, fmt.Errorf("docker API %q is older than %s: %w", ping.APIVersion, MinAPIVersion, ErrDaemon)
	}
	d.caps.APIVersion = ping.APIVersion
	info, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker info: %w: %w", ErrDaemon, err)
	}
	// The instance flags (tmpfs /sys/fs/cgroup, systemd mounting its own v1
	// hierarchies, parent limits in v1 files) are proven on cgroup v1 only.
	if info.Info.CgroupVersion != "" && info.Info.CgroupVersion != "1" {
		return nil, fmt.Errorf("docker reports cgroup v%s; this driver supports v1 hosts: %w", info.Info.CgroupVersion, ErrDaemon)
	}
	d.caps.StorageDriver = info.Info.Driver
	if d.opts.HostCPUs == 0 {
		d.opts.HostCPUs = info.Info.NCPU
	}
	backing := ""
	for _, kv := range info.Info.DriverStatus {
		if kv[0] == "Backing Filesystem" {
			backing = kv[1]
		}
	}
	switch {
	case info.Info.Driver == "overlay2" && backing == "xfs":
		// dockerd accepts size= only if the xfs is mounted with pquota; a
		// host without it fails every create with a clear daemon error,
		// which is what an operator who set up xfs wants to see.
		d.caps.RootDiskEnforced = true
	case info.Info.Driver == "overlay2":
		d.caps.RootDiskReason = fmt.Sprintf("overlay2 on %s: root_gb is not enforced (needs xfs mounted with pquota)", orUnknown(backing))
	default:
		d.caps.RootDiskReason = fmt.Sprintf("storage driver %s: root_gb is not enforced", orUnknown(info.Info.Driver))
	}
	d.opts.RootDiskQuota = d.caps.RootDiskEnforced
	if !d.caps.RootDiskEnforced {
		// Reported through Capabilities; the agent decides how loudly.
		d.log.DebugContext(ctx, "root disk size not enforced", "reason", d.caps.RootDiskReason)
	}
	ref, err := EnsureSandboxImage(ctx, api, d.goarch)
	if err != nil {
		return nil, err
	}
	d.opts.SandboxImage = ref
	if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create driver state dir: %w", err)
	}
	return d, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// versionAtLeast compares dotted API versions ("1.41" >= "1.41").
func versionAtLeast(have, want string) bool {
	hp, wp := strings.Split(have, "."), strings.Split(want, ".")
	for i := 0; i < len(wp); i++ {
		var h, w int
		if i < len(hp) {
			n, err := strconv.Atoi(hp[i])
			if err != nil {
				return false
			}
			h = n
		}
		w, _ = strconv.Atoi(wp[i])
		if h != w {
			return h > w
		}
	}
	return true
}

// Capabilities returns what New detected.
func (d *Driver) Capabilities() Capabilities { return d.caps }

// SpecOptions returns the effective spec options (with the sandbox image).
func (d *Driver) SpecOptions() spec.Options { return d.opts }

func (d *Driver) lock(id string) func() {
	d.mu.Lock()
	l, ok := d.locks[id]
	if !ok {
		l = &instLock{}
		d.locks[id] = l
	}
	l.refs++
	d.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(d.locks, id)
		}
		d.mu.Unlock()
	}
}

func (d *Driver) names(id string) (inst, sandbox string) { return spec.Names(d.opts, id) }

// marker files: the only state the driver keeps outside Docker, because a
// container's labels cannot change after create.
const (
	markSuspended = "suspended"
	markStopped   = "stopped"
	markPlugged   = "plugged"
)

func (d *Driver) markerPath(id, kind string) string {
	return filepath.Join(d.stateDir, id+"."+kind)
}

func (d *Driver) setMarker(id, kind string, on bool) error {
	p := d.markerPath(id, kind)
	if on {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return fmt.Errorf("write marker %s: %w", p, err)
		}
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove marker %s: %w", p, err)
	}
	return nil
}

func (d *Driver) hasMarker(id, kind string) bool {
	_, err := os.Stat(d.markerPath(id, kind))
	return err == nil
}

// inspect returns the container or an ErrNotFound-wrapping error.
func (d *Driver) inspect(ctx context.Context, name string) (container.InspectResponse, error) {
	res, err := d.api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, translate(err, "inspect "+name)
	}
	return res.Container, nil
}

func running(c container.InspectResponse) bool {
	return c.State != nil && c.State.Running
}

// lxcfsDir decides the lxcfs mounts for one spawn. Default: degrade. An
// instance without lxcfs still has every limit enforced by its cgroups; only
// what `free`, `top` and `uptime` print inside is the host's. Failing the build
// instead would turn a host daemon hiccup into failed builds and reschedules
// across the cloud (and nova's BuildFailureWeigher would then steer users
// away from the host), which is worse than a wrong /proc view that fixes
// itself on the next boot after lxcfs is back. Operators who sell "VM-like"
// /proc as a promise set WithRequireLXCFS(true).
func (d *Driver) lxcfsDir(ctx context.Context, id string) (string, error) {
	if d.opts.LXCFSDir == "" {
		return "", nil
	}
	if err := d.lxcfsOK(d.opts.LXCFSDir); err != nil {
		if d.requireFS {
			return "", fmt.Errorf("spawn %s: %w: %w", id, ErrLXCFS, err)
		}
		d.log.WarnContext(ctx, "lxcfs unavailable: instance boots without /proc virtualisation", "instance", id, "error", err)
		return "", nil
	}
	return d.opts.LXCFSDir, nil
}

func (d *Driver) create(ctx context.Context, s spec.Spec) (string, error) {
	res, err := d.api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: s.Config, HostConfig: s.HostConfig})
	if err != nil {
		return "", translate(err, "create container "+s.Name)
	}
	for _, w := range res.Warnings {
		d.log.DebugContext(ctx, "docker create warning", "container", s.Name, "warning", w)
	}
	return res.ID, nil
}

func (d *Driver) start(ctx context.Context, name string) error {
	if _, err := d.api.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		return translate(err, "start "+name)
	}
	return nil
}

func (d *Driver) remove(ctx context.Context, name string) error {
	_, err := d.api.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil {
		err = translate(err, "remove "+name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// netnsPath returns the sandbox's network namespace path if it runs.
func (d *Driver) netnsPath(ctx context.Context, id string) (string, error) {
	_, sb := d.names(id)
	c, err := d.inspect(ctx, sb)
	if err != nil {
		return "", err
	}
	if !running(c) || c.State.Pid <= 0 {
		return "", fmt.Errorf("sandbox of %s: %w", id, ErrNotRunning)
	}
	return filepath.Join(d.procRoot, strconv.Itoa(c.State.Pid), "ns", "net"), nil
}

// SandboxNetNS returns the path of the instance's network namespace
// (/proc/<sandbox pid>/ns/net) for plugging ports. The path names a live
// namespace as long as the sandbox runs; it changes only if the sandbox
// itself is restarted (host reboot, dockerd restart without live-restore).
func (d *Driver) SandboxNetNS(ctx context.Context, id string) (string, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return "", err
	}
	return d.netnsPath(ctx, id)
}

// sandboxIdentity names one incarnation of the sandbox's namespace: a
// restart (by dockerd's restart policy after a host reboot, or by anyone)
// gives a new pid and start time, and a new, empty namespace.
func sandboxIdentity(c container.InspectResponse) string {
	return fmt.Sprintf("%d %s", c.State.Pid, c.State.StartedAt)
}

// recordPlugged remembers which namespace incarnation was last handed to
// plug, so a later power on can tell a fresh, unplugged one from it.
func (d *Driver) recordPlugged(id string, c container.InspectResponse) error {
	p := d.markerPath(id, markPlugged)
	if err := os.WriteFile(p, []byte(sandboxIdentity(c)), 0o600); err != nil {
		return fmt.Errorf("write marker %s: %w", p, err)
	}
	return nil
}

// ensureSandbox makes sure the sandbox runs and its namespace is the one
// that was plugged. The sandbox restarts on its own after a host reboot
// (restart policy unless-stopped) with a new, empty namespace; comparing
// its incarnation with the recorded one catches that as well as a restart
// done by the driver here, and plug is called for the new namespace.
func (d *Driver) ensureSandbox(ctx context.Context, id string, plug PlugFunc) error {
	_, sb := d.names(id)
	c, err := d.inspect(ctx, sb)
	if err != nil {
		return err
	}
	if !running(c) {
		if err := d.start(ctx, sb); err != nil {
			return err
		}
		if c, err = d.inspect(ctx, sb); err != nil {
			return err
		}
		if !running(c) {
			return fmt.Errorf("sandbox of %s: %w", id, ErrNotRunning)
		}
	}
	recorded, err := os.ReadFile(d.markerPath(id, markPlugged))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read plug marker of %s: %w", id, err)
	}
	if string(recorded) == sandboxIdentity(c) {
		return nil
	}
	ns := filepath.Join(d.procRoot, strconv.Itoa(c.State.Pid), "ns", "net")
	if plug == nil && d.replug != nil {
		plug = func(ctx context.Context, netns string) error { return d.replug(ctx, id, netns) }
	}
	if plug == nil {
		d.log.WarnContext(ctx, "sandbox has a new network namespace and no plug callback was given: ports are not wired", "instance", id, "netns", ns)
		return nil
	}
	d.log.DebugContext(ctx, "sandbox has a new network namespace: plugging", "instance", id, "netns", ns)
	if err := plug(ctx, ns); err != nil {
		return fmt.Errorf("plug network of %s into %s: %w", id, ns, err)
	}
	return d.recordPlugged(id, c)
}

// Spawn creates and boots an instance: sandbox, network plug, parent
// cgroup limits, instance container, keys, start. On any failure what was
// created is removed again, so a retry starts clean.
func (d *Driver) Spawn(ctx context.Context, inst spec.Instance, plug PlugFunc) (err error) {
	if err := spec.Validate(inst, d.opts); err != nil {
		return err
	}
	defer d.lock(inst.UUID)()
	opts := d.opts
	if opts.LXCFSDir, err = d.lxcfsDir(ctx, inst.UUID); err != nil {
		return err
	}
	sbSpec, err := spec.Sandbox(inst, opts)
	if err != nil {
		return err
	}
	ctSpec, err := spec.Container(inst, opts)
	if err != nil {
		return err
	}
	for _, n := range []string{ctSpec.Name, sbSpec.Name} {
		if _, err := d.inspect(ctx, n); err == nil {
			return fmt.Errorf("spawn %s: container %s: %w", inst.UUID, n, ErrExists)
		} else if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("spawn %s: %w", inst.UUID, err)
		}
	}
	defer func() {
		if err != nil {
			// The caller's context may be what failed; clean up regardless.
			cctx := context.WithoutCancel(ctx)
			if cerr := d.destroyLocked(cctx, inst.UUID); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up after failed spawn: %w", cerr))
			}
		}
	}()
	if _, err := d.create(ctx, sbSpec); err != nil {
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	if err := d.start(ctx, sbSpec.Name); err != nil {
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	sbc, err := d.inspect(ctx, sbSpec.Name)
	if err != nil {
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	if !running(sbc) || sbc.State.Pid <= 0 {
		return fmt.Errorf("spawn %s: sandbox: %w", inst.UUID, ErrNotRunning)
	}
	ns := filepath.Join(d.procRoot, strconv.Itoa(sbc.State.Pid), "ns", "net")
	// The instance container is created (not started) while the ports are plugged and neutron
	// confirms them: creating it needs nothing from the network, and the plug step's wait for
	// network-vif-plugged is the longest part of a spawn. Init starts only after both.
	pctx, cancelPlug := context.WithCancel(ctx)
	defer cancelPlug()
	plugged := make(chan error, 1)
	go func() {
		if plug == nil {
			plugged <- nil
			return
		}
		plugged <- plug(pctx, ns)
	}()
	if err := d.createInstance(ctx, inst, ctSpec); err != nil {
		// No point waiting out neutron for a spawn that has already failed.
		cancelPlug()
		<-plugged
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	if err := <-plugged; err != nil {
		return fmt.Errorf("spawn %s: plug network into %s: %w", inst.UUID, ns, err)
	}
	if err := d.recordPlugged(inst.UUID, sbc); err != nil {
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	if err := d.start(ctx, ctSpec.Name); err != nil {
		return fmt.Errorf("spawn %s: %w", inst.UUID, err)
	}
	d.log.DebugContext(ctx, "instance spawned", "instance", inst.UUID, "image", inst.Image, "netns", ns, "lxcfs", opts.LXCFSDir != "")
	return nil
}

// createInstance writes the parent cgroup limits, creates the instance
// container and injects keys; it does not start it.
func (d *Driver) createInstance(ctx context.Context, inst spec.Instance, ctSpec spec.Spec) error {
	parent := spec.CgroupParent(d.opts, inst.UUID)
	if err := d.cgroups.Apply(ctx, parent, spec.ParentLimits(inst.Flavor, d.opts.DefaultPidsLimit)); err != nil {
		return fmt.Errorf("parent cgroup limits: %w", err)
	}
	if _, err := d.create(ctx, ctSpec); err != nil {
		return err
	}
	if len(inst.AuthorizedKeys) > 0 {
		if err := d.injectKeys(ctx, ctSpec.Name, inst.AuthorizedKeys); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads one regular file from a (created or running) container;
// ok is false when it does not exist.
func (d *Driver) readFile(ctx context.Context, name, p string, limit int64) (data []byte, ok bool, err error) {
	res, err := d.api.CopyFromContainer(ctx, name, client.CopyFromContainerOptions{SourcePath: p})
	if err != nil {
		if errors.Is(translate(err, ""), ErrNotFound) {
			return nil, false, nil
		}
		return nil, false, translate(err, "read "+p+" from "+name)
	}
	defer res.Content.Close()
	data, err = firstTarFile(res.Content, limit)
	if err != nil {
		return nil, false, fmt.Errorf("read %s from %s: %w", p, name, err)
	}
	return data, data != nil, nil
}

// injectKeys writes authorized_keys for root and the image's default user
// before the first boot, merged with whatever the image already has.
func (d *Driver) injectKeys(ctx context.Context, name string, keys []string) error {
	passwd, _, err := d.readFile(ctx, name, "/etc/passwd", 1<<20)
	if err != nil {
		return err
	}
	users := []spec.User{{Name: "root", UID: 0, GID: 0, Home: "/root"}}
	for _, u := range spec.ParsePasswd(passwd) {
		if u.Name == "root" {
			users[0] = u
		}
	}
	if u, ok := spec.DefaultUser(spec.ParsePasswd(passwd), ""); ok {
		users = append(users, u)
	}
	var files []spec.KeyFile
	for _, u := range users {
		existing, _, err := d.readFile(ctx, name, u.Home+"/.ssh/authorized_keys", 1<<20)
		if err != nil {
			return err
		}
		files = append(files, spec.KeyFile{User: u, Content: spec.MergeKeys(existing, keys)})
	}
	data, err := spec.AuthorizedKeysTar(files, time.Now())
	if err != nil {
		return err
	}
	if _, err := d.api.CopyToContainer(ctx, name, client.CopyToContainerOptions{DestinationPath: "/", Content: strings.NewReader(string(data))}); err != nil {
		return translate(err, "copy authorized_keys into "+name)
	}
	return nil
}

// Destroy removes the instance container, its sandbox, the parent cgroup
// and the markers. Missing pieces are not an error: Destroy is idempotent.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	return d.destroyLocked(ctx, id)
}

func (d *Driver) destroyLocked(ctx context.Context, id string) error {
	inst, sb := d.names(id)
	var errs []error
	// Instance first: it holds a reference on the sandbox's namespaces.
	if err := d.remove(ctx, inst); err != nil {
		errs = append(errs, err)
	}
	if err := d.remove(ctx, sb); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := d.cgroups.Remove(ctx, spec.CgroupParent(d.opts, id)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range []string{markSuspended, markStopped, markPlugged} {
		if err := d.setMarker(id, m, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	return nil
}
