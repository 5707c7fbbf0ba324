package spec

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

const testUUID = "0b5ad3a4-2f0e-4c51-9a57-3c1c6f9e2a11"

func testInst() Instance {
	return Instance{
		UUID:     testUUID,
		Hostname: "vm1",
		Image:    "nca/debian12:abc",
		ImageID:  "f3c1e9a0-0000-4000-8000-000000000001",
		Flavor:   Flavor{Name: "m1.small", VCPUs: 2, MemoryMB: 512, RootGB: 5},
		DNS:      []string{"10.0.0.2"},
	}
}

func testOpts() Options {
	o := DefaultOptions()
	o.SandboxImage = "nca/sandbox:1"
	return o
}

func TestContainerSpec(t *testing.T) {
	s, err := Container(testInst(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	c, h := s.Config, s.HostConfig
	checks := []struct {
		name string
		ok   bool
	}{
		{"name", s.Name == "nca-"+testUUID},
		{"init is PID 1 via entrypoint", slices.Equal(c.Entrypoint, []string{"/sbin/init"}) && len(c.Cmd) == 0},
		{"stop signal", c.StopSignal == "SIGRTMIN+3"},
		{"stop timeout", c.StopTimeout != nil && *c.StopTimeout == 60},
		{"tty", c.Tty},
		{"no hostname on joining container", c.Hostname == ""},
		{"env container", slices.Contains(c.Env, "container=docker")},
		{"env machine id", slices.Contains(c.Env, "container_uuid=0b5ad3a42f0e4c519a573c1c6f9e2a11")},
		{"env NUM_CPUS", slices.Contains(c.Env, "NUM_CPUS=2")},
		{"labels", c.Labels[LabelInstance] == testUUID && c.Labels[LabelOwner] == "nova-container-agent" && c.Labels[LabelRole] == RoleInstance && c.Labels[LabelFlavor] == "m1.small" && c.Labels[LabelImage] == "f3c1e9a0-0000-4000-8000-000000000001"},
		{"joins sandbox netns", h.NetworkMode == container.NetworkMode("container:nca-"+testUUID+"-sandbox")},
		{"not privileged", !h.Privileged},
		{"private cgroupns", h.CgroupnsMode == container.CgroupnsModePrivate},
		{"cap add", slices.Equal(h.CapAdd, []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"})},
		{"no restart policy", h.RestartPolicy.Name == container.RestartPolicyDisabled},
		{"tmpfs", h.Tmpfs["/run"] != "" && h.Tmpfs["/run/lock"] != "" && h.Tmpfs["/tmp"] != "" && h.Tmpfs["/sys/fs/cgroup"] != ""},
		{"memory", h.Memory == 512<<20 && h.MemorySwap == 512<<20},
		{"cfs quota", h.CPUPeriod == 100000 && h.CPUQuota == 200000 && h.CpusetCpus == ""},
		{"pids", h.PidsLimit != nil && *h.PidsLimit == 4096},
		{"cgroup parent", h.CgroupParent == "/nca/"+testUUID},
		{"no storage opt without quota support", h.StorageOpt == nil},
		{"no binds", len(h.Binds) == 0},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("%s: wrong (config %+v host %+v)", ck.name, c, h)
		}
	}
	for _, forbidden := range []string{"CAP_SYS_MODULE", "CAP_SYS_TIME", "CAP_SYS_RAWIO", "CAP_NET_ADMIN"} {
		if !slices.Contains(h.CapDrop, forbidden) || slices.Contains(h.CapAdd, forbidden) {
			t.Errorf("%s must be dropped and not added", forbidden)
		}
	}
	for _, a := range h.CapAdd {
		if slices.Contains(h.CapDrop, a) {
			t.Errorf("%s both added and dropped", a)
		}
	}
	targets := map[string]bool{}
	for _, m := range h.Mounts {
		if !m.ReadOnly || m.Type != "bind" {
			t.Errorf("mount %+v must be a read-only bind", m)
		}
		targets[m.Target] = true
		if !strings.HasPrefix(m.Source, "/var/lib/lxcfs/") || m.Source[len("/var/lib/lxcfs"):] != m.Target {
			t.Errorf("lxcfs mount source %s target %s", m.Source, m.Target)
		}
	}
	for _, want := range []string{"/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/loadavg", "/proc/diskstats", "/proc/swaps", "/sys/devices/system/cpu/online"} {
		if !targets[want] {
			t.Errorf("missing lxcfs mount %s", want)
		}
	}
}

func TestContainerVariants(t *testing.T) {
	o := testOpts()
	o.LXCFSDir = ""
	o.RootDiskQuota = true
	inst := testInst()
	inst.Flavor.DedicatedCPUs = "0-1"
	inst.Flavor.PidsLimit = 100
	inst.ConfigDriveDir = "/var/lib/nca/cd/" + testUUID
	s, err := Container(inst, o)
	if err != nil {
		t.Fatal(err)
	}
	h := s.HostConfig
	if h.CpusetCpus != "0-1" || h.CPUQuota != 0 {
		t.Errorf("dedicated cpus: cpuset %q quota %d", h.CpusetCpus, h.CPUQuota)
	}
	if *h.PidsLimit != 100 {
		t.Errorf("pids %d", *h.PidsLimit)
	}
	if h.StorageOpt["size"] != "5G" {
		t.Errorf("storage opt %v", h.StorageOpt)
	}
	if len(h.Mounts) != 1 || h.Mounts[0].Target != "/config-drive" || !h.Mounts[0].ReadOnly || h.Mounts[0].Source != inst.ConfigDriveDir {
		t.Errorf("mounts %+v", h.Mounts)
	}
}

func TestSandboxSpec(t *testing.T) {
	s, err := Sandbox(testInst(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	c, h := s.Config, s.HostConfig
	if s.Name != "nca-"+testUUID+"-sandbox" || c.Hostname != "vm1" || c.Image != "nca/sandbox:1" || !slices.Equal(c.Cmd, []string{"/pause"}) {
		t.Errorf("sandbox config %+v", c)
	}
	if h.NetworkMode != "none" || h.RestartPolicy.Name != container.RestartPolicyUnlessStopped || !slices.Equal(h.CapDrop, []string{"ALL"}) || !h.ReadonlyRootfs || h.Privileged {
		t.Errorf("sandbox host config %+v", h)
	}
	if c.Labels[LabelRole] != RoleSandbox || c.Labels[LabelInstance] != testUUID {
		t.Errorf("labels %v", c.Labels)
	}
	if len(h.DNS) != 1 || h.DNS[0].String() != "10.0.0.2" {
		t.Errorf("dns %v", h.DNS)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(*Instance, *Options){
		"uuid upper":       func(i *Instance, _ *Options) { i.UUID = strings.ToUpper(testUUID) },
		"uuid garbage":     func(i *Instance, _ *Options) { i.UUID = "../../etc" },
		"hostname":         func(i *Instance, _ *Options) { i.Hostname = "a_b" },
		"hostname long":    func(i *Instance, _ *Options) { i.Hostname = strings.Repeat("a", 64) },
		"image empty":      func(i *Instance, _ *Options) { i.Image = " " },
		"vcpus":            func(i *Instance, _ *Options) { i.Flavor.VCPUs = 0 },
		"memory":           func(i *Instance, _ *Options) { i.Flavor.MemoryMB = 16 },
		"cpuset syntax":    func(i *Instance, _ *Options) { i.Flavor.DedicatedCPUs = "0-a" },
		"cpuset count":     func(i *Instance, _ *Options) { i.Flavor.DedicatedCPUs = "0" },
		"cpuset reversed":  func(i *Instance, _ *Options) { i.Flavor.DedicatedCPUs = "3-1" },
		"config drive rel": func(i *Instance, _ *Options) { i.ConfigDriveDir = "cd" },
		"dns":              func(i *Instance, _ *Options) { i.DNS = []string{"not-an-ip"} },
		"key newline":      func(i *Instance, _ *Options) { i.AuthorizedKeys = []string{"ssh-ed25519 A\nB"} },
		"no sandbox image": func(_ *Instance, o *Options) { o.SandboxImage = "" },
		"cgroup root":      func(_ *Instance, o *Options) { o.CgroupParentRoot = "nca" },
	}
	for name, mutate := range cases {
		inst, opts := testInst(), testOpts()
		mutate(&inst, &opts)
		if _, err := Container(inst, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
		if _, err := Sandbox(inst, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: sandbox: want ErrInvalid, got %v", name, err)
		}
	}
}

func TestSharedCPUSet(t *testing.T) {
	if got := SharedCPUSet(testUUID, 2, 0); got != "" {
		t.Errorf("unknown host cpus: %q", got)
	}
	if got := SharedCPUSet(testUUID, 4, 4); got != "" {
		t.Errorf("whole host: %q", got)
	}
	got := SharedCPUSet(testUUID, 3, 8)
	if n, err := CountCPUs(got); err != nil || n != 3 {
		t.Errorf("3 of 8: %q (%d, %v)", got, n, err)
	}
	if again := SharedCPUSet(testUUID, 3, 8); again != got {
		t.Errorf("not deterministic: %q vs %q", got, again)
	}
	seen := map[string]bool{}
	for i := 0; i < 32; i++ {
		seen[SharedCPUSet(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), 1, 8)] = true
	}
	if len(seen) < 4 {
		t.Errorf("instances do not spread: %v", seen)
	}
	o := testOpts()
	o.HostCPUs = 8
	s, err := Container(testInst(), o)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := CountCPUs(s.HostConfig.CpusetCpus); n != 2 || s.HostConfig.CPUQuota != 200000 {
		t.Errorf("shared flavor on 8 cpus: cpuset %q quota %d", s.HostConfig.CpusetCpus, s.HostConfig.CPUQuota)
	}
}

func TestCountCPUs(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3": 4, "0,2,4-5": 4, "1,1": 1} {
		got, err := CountCPUs(in)
		if err != nil || got != want {
			t.Errorf("CountCPUs(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "a", "0-99999", "1-0"} {
		if _, err := CountCPUs(bad); err == nil {
			t.Errorf("CountCPUs(%q) accepted", bad)
		}
	}
}

func TestParentLimits(t *testing.T) {
	got := ParentLimits(Flavor{VCPUs: 2, MemoryMB: 256}, 4096)
	want := []CgroupFile{
		{"memory", "memory.limit_in_bytes", "268435456"},
		{"memory", "memory.memsw.limit_in_bytes", "268435456"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", "200000"},
		{"pids", "pids.max", "4096"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParentLimits = %v", got)
	}
	if c := ParentControllers(got); !slices.Equal(c, []string{"cpu", "memory", "pids"}) {
		t.Errorf("controllers %v", c)
	}
	pinned := ParentLimits(Flavor{VCPUs: 1, MemoryMB: 256, DedicatedCPUs: "1", PidsLimit: 50}, 4096)
	if len(pinned) != 3 || pinned[2].Value != "50" {
		t.Errorf("pinned limits %v", pinned)
	}
}

func TestMapState(t *testing.T) {
	cases := []struct {
		s      ContainerState
		power  PowerState
		reason Reason
	}{
		{ContainerState{}, NoState, ReasonMissing},
		{ContainerState{Exists: true, Status: "running", Running: true}, Running, ReasonNone},
		{ContainerState{Exists: true, Status: "paused", Running: true, Paused: true}, Paused, ReasonNone},
		{ContainerState{Exists: true, Status: "paused", Running: true, Paused: true, Suspended: true}, Suspended, ReasonNone},
		{ContainerState{Exists: true, Status: "created"}, Shutdown, ReasonNeverStarted},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 129}, NoState, ReasonReboot},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 130}, Shutdown, ReasonPoweroff},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 0}, Shutdown, ReasonPoweroff},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 137}, Crashed, ReasonCrashed},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 137, AgentStopped: true}, Shutdown, ReasonPoweroff},
		{ContainerState{Exists: true, Status: "exited", ExitCode: 137, OOMKilled: true}, Crashed, ReasonOOMKilled},
	}
	for _, c := range cases {
		p, r := MapState(c.s)
		if p != c.power || r != c.reason {
			t.Errorf("MapState(%+v) = %v/%q, want %v/%q", c.s, p, r, c.power, c.reason)
		}
	}
	if Running != 1 || Paused != 3 || Shutdown != 4 || Crashed != 6 || Suspended != 7 || NoState != 0 {
		t.Error("nova power state numbers changed")
	}
}

const passwd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
alice:x:1001:1001::/home/alice:/bin/bash
debian:x:1000:1000:Debian:/home/debian:/bin/bash
svc:x:999:999::/var/lib/svc:/bin/false
`

func TestDefaultUser(t *testing.T) {
	users := ParsePasswd([]byte(passwd))
	if len(users) != 6 {
		t.Fatalf("parsed %d users", len(users))
	}
	if u, ok := DefaultUser(users, ""); !ok || u.Name != "debian" || u.UID != 1000 || u.Home != "/home/debian" {
		t.Errorf("default user %+v %v", u, ok)
	}
	if u, ok := DefaultUser(users, "alice"); !ok || u.Name != "alice" {
		t.Errorf("preferred user %+v %v", u, ok)
	}
	if u, ok := DefaultUser(ParsePasswd([]byte("root:x:0:0::/root:/bin/sh\nbob:x:1500:1500::/home/bob:/bin/sh\nzed:x:1200:1200::/home/zed:/usr/sbin/nologin\n")), ""); !ok || u.Name != "bob" {
		t.Errorf("fallback user %+v %v", u, ok)
	}
	if _, ok := DefaultUser(ParsePasswd([]byte("root:x:0:0::/root:/bin/sh\n")), "root"); ok {
		t.Error("root must not be the default user")
	}
}

func TestMergeKeys(t *testing.T) {
	got := string(MergeKeys([]byte("ssh-rsa AAA old\n\n"), []string{"ssh-ed25519 BBB new", "ssh-rsa AAA old"}))
	if got != "ssh-rsa AAA old\nssh-ed25519 BBB new\n" {
		t.Errorf("MergeKeys = %q", got)
	}
}

func TestAuthorizedKeysTar(t *testing.T) {
	data, err := AuthorizedKeysTar([]KeyFile{
		{User: User{Name: "root", Home: "/root"}, Content: []byte("k1\n")},
		{User: User{Name: "debian", UID: 1000, GID: 1000, Home: "/home/debian"}, Content: []byte("k1\n")},
	}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name+" "+h.FileInfo().Mode().String()+" "+itoa(h.Uid)+":"+itoa(h.Gid))
	}
	want := []string{
		"root/.ssh/ drwx------ 0:0",
		"root/.ssh/authorized_keys -rw------- 0:0",
		"home/debian/.ssh/ drwx------ 1000:1000",
		"home/debian/.ssh/authorized_keys -rw------- 1000:1000",
	}
	if !slices.Equal(got, want) {
		t.Errorf("tar entries %q", got)
	}
	if _, err := AuthorizedKeysTar([]KeyFile{{User: User{Home: "/"}}}, time.Unix(0, 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("home / accepted: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
