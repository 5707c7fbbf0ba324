package spec

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// ErrInvalid is wrapped by every validation error, so callers can tell bad
// input (nothing was created) from a Docker failure with errors.Is.
var ErrInvalid = errors.New("invalid instance description")

// Label keys set on every container this project creates. ListInstances and
// orphan cleanup select on LabelOwner, never on names.
const (
	LabelInstance = "io.nca.instance" // instance UUID (canonical, with dashes)
	LabelOwner    = "io.nca.owner"    // Options.OwnerKey: which agent owns the container
	LabelRole     = "io.nca.role"     // RoleInstance or RoleSandbox
	LabelFlavor   = "io.nca.flavor"   // flavor name
	LabelImage    = "io.nca.image"    // glance image id (or the docker ref when unknown)
)

// Values of LabelRole.
const (
	RoleInstance = "instance"
	RoleSandbox  = "sandbox"
)

// StopSignal is what systemd understands as "halt cleanly" (systemd.io
// CONTAINER_INTERFACE); docker stop/restart send it first.
const StopSignal = "SIGRTMIN+3"

// SandboxCmd is the path of the sleep-forever binary inside the sandbox image.
const SandboxCmd = "/pause"

// Flavor is the part of a nova flavor the container enforces.
type Flavor struct {
	Name     string
	VCPUs    int
	MemoryMB int64
	RootGB   int
	// DedicatedCPUs is a cpuset list ("2-3", "0,2") when the flavor asks for
	// pinned CPUs (hw:cpu_policy=dedicated); empty means shared CPUs limited
	// by CFS quota.
	DedicatedCPUs string
	// PidsLimit overrides Options.DefaultPidsLimit when > 0.
	PidsLimit int64
}

// Instance describes one nova instance as the driver needs it.
type Instance struct {
	UUID     string // nova instance uuid
	Hostname string // RFC 1123 label; becomes the guest's hostname
	Image    string // docker image reference (the converted glance image)
	ImageID  string // glance image id, for the label only
	Flavor   Flavor
	// ConfigDriveDir is a host directory holding nova's config drive tree
	// (openstack/<date>/meta_data.json, user_data, network_data.json); when
	// set it is bind-mounted read-only at /config-drive, where cloud-init's
	// ConfigDrive datasource looks for a directory.
	ConfigDriveDir string
	// DNS servers for the guest's /etc/resolv.conf (set on the sandbox, which
	// owns resolv.conf for containers joining its network namespace).
	DNS []string
	// AuthorizedKeys are public keys (one per entry, OpenSSH format) for root
	// and the image's default user.
	AuthorizedKeys []string
}

// Options are host-wide settings for every spec.
type Options struct {
	// NamePrefix prefixes container names: <prefix><uuid> and <prefix><uuid>-sandbox.
	NamePrefix string
	// OwnerKey identifies this agent in LabelOwner.
	OwnerKey string
	// SandboxImage is the image reference of the network sandbox.
	SandboxImage string
	// LXCFSDir is where lxcfs is mounted; empty disables the /proc overlays.
	LXCFSDir string
	// CgroupParentRoot is the host cgroup under which each instance gets its
	// own parent (<root>/<uuid>); limits written on that parent cannot be
	// raised from inside the container.
	CgroupParentRoot string
	// RootDiskQuota says the storage driver enforces a per-container size
	// (overlay2 on xfs with pquota); false leaves root_gb unenforced.
	RootDiskQuota bool
	// DefaultPidsLimit caps processes per instance when the flavor says nothing.
	DefaultPidsLimit int64
	// StopTimeout is the clean-shutdown grace in seconds for docker stop.
	StopTimeout int
	// ExtraEnv is appended to the instance container's environment.
	ExtraEnv []string
	// HostCPUs is the number of host CPUs (0-based, contiguous). When set
	// and a shared flavor has fewer vCPUs, the instance also gets a cpuset
	// of that many CPUs (see SharedCPUSet).
	HostCPUs int
}

// DefaultOptions returns the production defaults.
func DefaultOptions() Options {
	return Options{
		NamePrefix:       "nca-",
		OwnerKey:         "nova-container-agent",
		SandboxImage:     "", // filled by the driver after importing the sandbox image
		LXCFSDir:         "/var/lib/lxcfs",
		CgroupParentRoot: "/nca",
		DefaultPidsLimit: 4096,
		StopTimeout:      60,
	}
}

// Spec is everything one ContainerCreate needs.
type Spec struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
}

// LXCFSFiles are the lxcfs-virtualised files bind-mounted over the guest's
// own, relative to the lxcfs mount point and to the container root alike.
var LXCFSFiles = []string{
	"proc/cpuinfo",
	"proc/diskstats",
	"proc/loadavg",
	"proc/meminfo",
	"proc/stat",
	"proc/swaps",
	"proc/uptime",
	"sys/devices/system/cpu/online",
}

// capDrop lists capabilities that must never reach a guest even if a
// daemon's default set is widened (dockerd --default-capabilities or a
// future default). Dropping one that is absent is a no-op.
var capDrop = []string{
	"CAP_AUDIT_CONTROL",
	"CAP_BLOCK_SUSPEND",
	"CAP_DAC_READ_SEARCH", // open_by_handle_at: the classic container escape
	"CAP_IPC_LOCK",
	"CAP_LEASE",
	"CAP_LINUX_IMMUTABLE",
	"CAP_MAC_ADMIN",
	"CAP_MAC_OVERRIDE",
	"CAP_NET_ADMIN", // would let the guest re-address the Neutron port
	"CAP_SYS_MODULE",
	"CAP_SYS_NICE",
	"CAP_SYS_PACCT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
}

// capAdd: SYS_ADMIN lets systemd mount its own cgroup hierarchies on the
// tmpfs /sys/fs/cgroup inside the private cgroup namespace; SYS_BOOT makes
// reboot(2) inside the pid namespace end PID 1 with SIGHUP (exit 129) for a
// reboot and SIGINT (exit 130) for a poweroff instead of exit 0 for both; it
// never reaches the host (kernel reboot_pid_ns).
var capAdd = []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"}

// CapDrop returns a copy of the capabilities dropped from every instance.
func CapDrop() []string { return append([]string(nil), capDrop...) }

// CapAdd returns a copy of the capabilities added to every instance.
func CapAdd() []string { return append([]string(nil), capAdd...) }

var (
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	cpusetRE   = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)
)

// Names returns the instance and sandbox container names for uuid.
func Names(opts Options, id string) (instance, sandbox string) {
	return opts.NamePrefix + id, opts.NamePrefix + id + "-sandbox"
}

// CgroupParent returns the per-instance parent cgroup path.
func CgroupParent(opts Options, id string) string {
	return path.Join(opts.CgroupParentRoot, id)
}

// MachineID returns the value of $container_uuid: the instance uuid without
// dashes, which systemd turns into a stable /etc/machine-id.
func MachineID(id string) string { return strings.ReplaceAll(id, "-", "") }

// ValidateUUID checks that id is a canonical (lower-case, dashed) uuid; the
// driver builds names and cgroup paths from it.
func ValidateUUID(id string) error {
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return fmt.Errorf("%w: uuid %q is not a canonical lower-case uuid", ErrInvalid, id)
	}
	return nil
}

// Validate checks inst and opts before anything is created.
func Validate(inst Instance, opts Options) error {
	if err := ValidateUUID(inst.UUID); err != nil {
		return err
	}
	if !hostnameRE.MatchString(inst.Hostname) {
		return fmt.Errorf("%w: hostname %q is not an RFC 1123 label", ErrInvalid, inst.Hostname)
	}
	if strings.TrimSpace(inst.Image) == "" || strings.ContainsAny(inst.Image, " \t\n") {
		return fmt.Errorf("%w: image reference %q", ErrInvalid, inst.Image)
	}
	f := inst.Flavor
	if f.VCPUs < 1 || f.VCPUs > 4096 {
		return fmt.Errorf("%w: flavor %q vcpus %d", ErrInvalid, f.Name, f.VCPUs)
	}
	// 64 MiB: below that systemd + journald + sshd do not boot.
	if f.MemoryMB < 64 || f.MemoryMB > 1<<30 {
		return fmt.Errorf("%w: flavor %q memory_mb %d (want >= 64)", ErrInvalid, f.Name, f.MemoryMB)
	}
	if f.RootGB < 0 || f.PidsLimit < 0 {
		return fmt.Errorf("%w: flavor %q negative root_gb or pids limit", ErrInvalid, f.Name)
	}
	if f.DedicatedCPUs != "" {
		n, err := CountCPUs(f.DedicatedCPUs)
		if err != nil {
			return err
		}
		if n != f.VCPUs {
			return fmt.Errorf("%w: dedicated cpuset %q has %d cpus, flavor %q wants %d", ErrInvalid, f.DedicatedCPUs, n, f.Name, f.VCPUs)
		}
	}
	if inst.ConfigDriveDir != "" && (!path.IsAbs(inst.ConfigDriveDir) || strings.Contains(inst.ConfigDriveDir, ",")) {
		return fmt.Errorf("%w: config drive dir %q must be an absolute path without commas", ErrInvalid, inst.ConfigDriveDir)
	}
	for _, d := range inst.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("%w: dns server %q: %v", ErrInvalid, d, err)
		}
	}
	for i, k := range inst.AuthorizedKeys {
		if strings.ContainsAny(k, "\n\r\x00") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%w: authorized key %d is empty or spans lines", ErrInvalid, i)
		}
	}
	if opts.OwnerKey == "" || opts.SandboxImage == "" {
		return fmt.Errorf("%w: options need OwnerKey and SandboxImage", ErrInvalid)
	}
	if opts.CgroupParentRoot == "" || !path.IsAbs(opts.CgroupParentRoot) {
		return fmt.Errorf("%w: cgroup parent root %q must be absolute", ErrInvalid, opts.CgroupParentRoot)
	}
	return nil
}

// CountCPUs returns how many CPUs a cpuset list ("0-2,5") names.
func CountCPUs(list string) (int, error) {
	if !cpusetRE.MatchString(list) {
		return 0, fmt.Errorf("%w: cpuset %q", ErrInvalid, list)
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("%w: cpuset %q: %v", ErrInvalid, list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("%w: cpuset %q: %v", ErrInvalid, list, err)
			}
		}
		if b < a || b-a > 4096 {
			return 0, fmt.Errorf("%w: cpuset %q: bad range %s", ErrInvalid, list, part)
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	return len(seen), nil
}

func labels(inst Instance, opts Options, role string) map[string]string {
	img := inst.ImageID
	if img == "" {
		img = inst.Image
	}
	return map[string]string{
		LabelInstance: inst.UUID,
		LabelOwner:    opts.OwnerKey,
		LabelRole:     role,
		LabelFlavor:   inst.Flavor.Name,
		LabelImage:    img,
	}
}

// Sandbox returns the network-sandbox container for inst: a sleeping process
// that owns the instance's network namespace (network mode none, so Docker
// adds nothing but lo) and its UTS/hosts/resolv.conf, restarted by dockerd
// itself (unless-stopped) after a host reboot so the agent can re-plug ports
// before the instance starts again.
func Sandbox(inst Instance, opts Options) (Spec, error) {
	if err := Validate(inst, opts); err != nil {
		return Spec{}, err
	}
	_, name := Names(opts, inst.UUID)
	var dns []netip.Addr
	for _, d := range inst.DNS {
		dns = append(dns, netip.MustParseAddr(d)) // validated above
	}
	pids := int64(8)
	return Spec{
		Name: name,
		Config: &container.Config{
			// Docker refuses --hostname together with --network container:X;
			// the joining container takes hostname, /etc/hosts and
			// resolv.conf from the sandbox, so they are set here.
			Hostname: inst.Hostname,
			Image:    opts.SandboxImage,
			Cmd:      []string{SandboxCmd},
			Labels:   labels(inst, opts, RoleSandbox),
			// PID 1 without a handler ignores SIGTERM; SIGKILL ends it at once.
			StopSignal: "SIGKILL",
		},
		HostConfig: &container.HostConfig{
			NetworkMode:    "none",
			RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			CapDrop:        []string{"ALL"},
			ReadonlyRootfs: true,
			SecurityOpt:    []string{"no-new-privileges"},
			DNS:            dns,
			LogConfig:      container.LogConfig{Type: "none"},
			Resources: container.Resources{
				Memory:     16 << 20,
				MemorySwap: 16 << 20,
				PidsLimit:  &pids,
			},
		},
	}, nil
}

// Container returns the VM-like instance container for inst. It joins the
// sandbox's network namespace, so it must be created after the sandbox.
func Container(inst Instance, opts Options) (Spec, error) {
	if err := Validate(inst, opts); err != nil {
		return Spec{}, err
	}
	name, sandbox := Names(opts, inst.UUID)
	f := inst.Flavor
	mem := f.MemoryMB << 20
	pids := opts.DefaultPidsLimit
	if f.PidsLimit > 0 {
		pids = f.PidsLimit
	}
	env := []string{
		"container=docker",
		"container_uuid=" + MachineID(inst.UUID),
		// The app-side escape hatch for runtimes that count host CPUs via
		// sched_getaffinity or sysconf instead of reading lxcfs' files.
		"NUM_CPUS=" + strconv.Itoa(f.VCPUs),
		// cloud-init's OpenStack detection in a container reads PID 1's env.
		"product_name=OpenStack Nova",
	}
	env = append(env, opts.ExtraEnv...)
	stopTimeout := opts.StopTimeout
	res := container.Resources{
		CgroupParent: CgroupParent(opts, inst.UUID),
		Memory:       mem,
		MemorySwap:   mem, // equal: no swap beyond the flavor's RAM
		PidsLimit:    &pids,
	}
	if f.DedicatedCPUs != "" {
		res.CpusetCpus = f.DedicatedCPUs
	} else {
		res.CPUPeriod = 100000
		res.CPUQuota = int64(f.VCPUs) * 100000
		res.CpusetCpus = SharedCPUSet(inst.UUID, f.VCPUs, opts.HostCPUs)
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode("container:" + sandbox),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CgroupnsMode:  container.CgroupnsModePrivate,
		CapAdd:        CapAdd(),
		CapDrop:       CapDrop(),
		Privileged:    false,
		Tmpfs: map[string]string{
			"/run":           "rw,nosuid,nodev,mode=755",
			"/run/lock":      "rw,nosuid,nodev,noexec,size=5m",
			"/tmp":           "rw,nosuid,nodev",
			"/sys/fs/cgroup": "rw,nosuid,nodev,noexec,mode=755",
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}},
		Resources: res,
	}
	if opts.RootDiskQuota && f.RootGB > 0 {
		hc.StorageOpt = map[string]string{"size": strconv.Itoa(f.RootGB) + "G"}
	}
	if opts.LXCFSDir != "" {
		for _, rel := range LXCFSFiles {
			hc.Mounts = append(hc.Mounts, mount.Mount{
				Type:     mount.TypeBind,
				Source:   path.Join(opts.LXCFSDir, rel),
				Target:   "/" + rel,
				ReadOnly: true,
			})
		}
	}
	if inst.ConfigDriveDir != "" {
		hc.Mounts = append(hc.Mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   inst.ConfigDriveDir,
			Target:   "/config-drive",
			ReadOnly: true,
		})
	}
	return Spec{
		Name: name,
		Config: &container.Config{
			Image: inst.Image,
			// Entrypoint rather than Cmd: a user Entrypoint stops Docker from
			// appending the image's Cmd as arguments to init.
			Entrypoint:  []string{"/sbin/init"},
			Env:         env,
			Labels:      labels(inst, opts, RoleInstance),
			StopSignal:  StopSignal,
			StopTimeout: &stopTimeout,
			// A pty as /dev/console: systemd logs boot messages there and
			// console-getty runs, so docker logs reads like a serial console.
			Tty:       true,
			OpenStdin: false,
		},
		HostConfig: hc,
	}, nil
}

// SharedCPUSet returns the cpuset for a shared-CPU instance: vcpus
// consecutive host CPUs (wrapping), starting at a position derived from the
// uuid so instances spread over the host. The CFS quota alone caps CPU time
// but is invisible to nproc, sched_getaffinity, sysconf(_SC_NPROCESSORS_ONLN),
// the JVM and the Go runtime, which all count the affinity mask; a VM with
// 2 vCPUs should show 2. The cost: two busy instances can land on the same
// CPU while another idles, as with vCPU pinning. Empty when the flavor
// covers the whole host (or hostCPUs is unknown).
func SharedCPUSet(id string, vcpus, hostCPUs int) string {
	if hostCPUs <= 0 || vcpus >= hostCPUs {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	start := int(h.Sum32() % uint32(hostCPUs))
	cpus := make([]int, 0, vcpus)
	for i := 0; i < vcpus; i++ {
		cpus = append(cpus, (start+i)%hostCPUs)
	}
	sort.Ints(cpus)
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

// CgroupFile is one value the driver writes into the host cgroup tree before
// the instance starts.
type CgroupFile struct {
	Controller string // cgroup v1 controller directory (memory, cpu, pids)
	File       string
	Value      string
}

// ParentLimits returns the cgroup v1 limits for the per-instance parent
// cgroup, in write order (memory before memsw: the kernel rejects a memsw
// limit below the memory limit). The guest has CAP_SYS_ADMIN and cgroup v1
// has no delegation protection, so its root could raise the limit files of
// its own (leaf) cgroup; it cannot see, let alone write, the parent.
func ParentLimits(f Flavor, defaultPids int64) []CgroupFile {
	mem := strconv.FormatInt(f.MemoryMB<<20, 10)
	pids := defaultPids
	if f.PidsLimit > 0 {
		pids = f.PidsLimit
	}
	out := []CgroupFile{
		{"memory", "memory.limit_in_bytes", mem},
		{"memory", "memory.memsw.limit_in_bytes", mem},
	}
	if f.DedicatedCPUs == "" {
		out = append(out,
			CgroupFile{"cpu", "cpu.cfs_period_us", "100000"},
			CgroupFile{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(int64(f.VCPUs)*100000, 10)})
	}
	if pids > 0 {
		out = append(out, CgroupFile{"pids", "pids.max", strconv.FormatInt(pids, 10)})
	}
	return out
}

// ParentControllers returns the v1 controllers in which the driver creates
// the per-instance parent (and removes it at destroy), sorted.
func ParentControllers(files []CgroupFile) []string {
	set := map[string]bool{}
	for _, f := range files {
		set[f.Controller] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
