package driver_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// kernelCgroups keeps parent cgroup values in memory and refuses writes the
// cgroup v1 kernel refuses: a memory limit above the memsw limit, or a memsw
// limit below the memory limit, of the same cgroup.
type kernelCgroups struct {
	mu   sync.Mutex
	vals map[string]int64 // parent + "/" + file
}

func (k *kernelCgroups) Apply(_ context.Context, parent string, files []spec.CgroupFile) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.vals == nil {
		k.vals = map[string]int64{}
	}
	get := func(f string) int64 {
		if v, ok := k.vals[parent+"/"+f]; ok {
			return v
		}
		return 1 << 62 // unlimited
	}
	for _, f := range files {
		v, err := strconv.ParseInt(f.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.File, err)
		}
		switch f.File {
		case "memory.limit_in_bytes":
			if v > get("memory.memsw.limit_in_bytes") {
				return fmt.Errorf("write %s=%d above memsw: invalid argument", f.File, v)
			}
		case "memory.memsw.limit_in_bytes":
			if v < get("memory.limit_in_bytes") {
				return fmt.Errorf("write %s=%d below memory: invalid argument", f.File, v)
			}
		}
		k.vals[parent+"/"+f.File] = v
	}
	return nil
}

func (k *kernelCgroups) Remove(_ context.Context, parent string) error { return nil }

func (k *kernelCgroups) value(parent, file string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.vals[parent+"/"+file]
}

func readGuestFile(t *testing.T, f *drivertest.Fake, name, p string) string {
	t.Helper()
	res, err := f.CopyFromContainer(context.Background(), name, client.CopyFromContainerOptions{SourcePath: p})
	if err != nil {
		t.Fatalf("read %s from %s: %v", p, name, err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("read %s from %s: %v", p, name, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

func TestResizeKeepsContainerAndAppliesLimits(t *testing.T) {
	ctx := context.Background()
	cg := &kernelCgroups{}
	e := newEnv(t, driver.WithCgroups(cg))
	in := inst(uuid1)
	if err := e.d.Spawn(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	name := "nca-" + uuid1
	_, _, idBefore := e.inspect(t, name)
	// The guest writes a file before the resize: it must survive resize and revert.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "root/data.txt", Mode: 0o644, Size: 5})
	_, _ = tw.Write([]byte("hello"))
	_ = tw.Close()
	if _, err := e.f.CopyToContainer(ctx, name, client.CopyToContainerOptions{DestinationPath: "/", Content: &b}); err != nil {
		t.Fatal(err)
	}

	big := spec.Flavor{Name: "m1.small", VCPUs: 2, MemoryMB: 512, RootGB: 1}
	if err := e.d.Resize(ctx, uuid1, big, 0); err != nil {
		t.Fatalf("resize up: %v", err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Shutdown || st.Reason != spec.ReasonPoweroff {
		t.Fatalf("after resize the instance is %v/%v, want SHUTDOWN/poweroff (finish_resize powers it on)", st.Power, st.Reason)
	}
	r, err := e.f.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Container.ID != idBefore {
		t.Fatalf("resize replaced the container (%s → %s): the guest's writable layer would be lost", idBefore, r.Container.ID)
	}
	res := r.Container.HostConfig.Resources
	if res.Memory != 512<<20 || res.MemorySwap != 512<<20 || res.CPUQuota != 200000 || res.CPUPeriod != 100000 {
		t.Fatalf("container limits after resize: memory %d swap %d quota %d period %d", res.Memory, res.MemorySwap, res.CPUQuota, res.CPUPeriod)
	}
	parent := spec.CgroupParent(e.d.SpecOptions(), uuid1)
	if got := cg.value(parent, "memory.limit_in_bytes"); got != 512<<20 {
		t.Fatalf("parent memory limit %d, want %d", got, 512<<20)
	}
	if got := cg.value(parent, "cpu.cfs_quota_us"); got != 200000 {
		t.Fatalf("parent cfs quota %d, want 200000", got)
	}
	if err := e.d.PowerOn(ctx, uuid1, nil); err != nil {
		t.Fatal(err)
	}
	if st := e.state1(t, uuid1); st.Power != spec.Running {
		t.Fatalf("after power on: %v", st.Power)
	}

	// Revert: back to the old flavor, shrinking memory (memory is written before memsw).
	if err := e.d.Resize(ctx, uuid1, in.Flavor, 0); err != nil {
		t.Fatalf("resize down: %v", err)
	}
	if got := cg.value(parent, "memory.memsw.limit_in_bytes"); got != 256<<20 {
		t.Fatalf("parent memsw limit %d, want %d", got, 256<<20)
	}
	r, _ = e.f.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if r.Container.HostConfig.Memory != 256<<20 || r.Container.HostConfig.CPUQuota != 100000 {
		t.Fatalf("container limits after revert: memory %d quota %d", r.Container.HostConfig.Memory, r.Container.HostConfig.CPUQuota)
	}
	if got := readGuestFile(t, e.f, name, "/root/data.txt"); got != "hello" {
		t.Fatalf("guest file after resize and revert = %q, want hello", got)
	}
}

func TestResizeRefusesBadInputBeforeStopping(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []spec.Flavor{
		{Name: "zero", VCPUs: 0, MemoryMB: 256},
		{Name: "tiny", VCPUs: 1, MemoryMB: 16},
		{Name: "pinned", VCPUs: 2, MemoryMB: 256, DedicatedCPUs: "0"},
	} {
		if err := e.d.Resize(ctx, uuid1, f, 0); !errors.Is(err, spec.ErrInvalid) {
			t.Errorf("resize to %+v: %v, want ErrInvalid", f, err)
		}
	}
	if st := e.state1(t, uuid1); st.Power != spec.Running {
		t.Fatalf("a refused resize stopped the instance: %v", st.Power)
	}
	if err := e.d.Resize(ctx, uuid2, inst(uuid2).Flavor, 0); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("resize of a missing instance: %v, want ErrNotFound", err)
	}
	if err := e.d.Resize(ctx, "not-a-uuid", inst(uuid2).Flavor, 0); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("resize with a bad uuid: %v, want ErrInvalid", err)
	}
}

func TestPlanResize(t *testing.T) {
	opts := spec.DefaultOptions()
	opts.HostCPUs = 4
	cur := &container.HostConfig{Resources: container.Resources{Memory: 256 << 20}}
	order := func(p driver.ResizePlan) string {
		var s string
		for _, f := range p.Parent {
			if f.Controller == "memory" {
				s += f.File + " "
			}
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		to        spec.Flavor
		rootQuota bool
		storage   string
		wantErr   error
		order     string
		cpuset    string
		quota     int64
	}{
		{name: "grow writes memsw first", to: spec.Flavor{VCPUs: 2, MemoryMB: 512},
			order: "memory.memsw.limit_in_bytes memory.limit_in_bytes ", quota: 200000},
		{name: "shrink writes memory first", to: spec.Flavor{VCPUs: 1, MemoryMB: 128},
			order: "memory.limit_in_bytes memory.memsw.limit_in_bytes ", quota: 100000},
		{name: "whole host gets every cpu explicitly", to: spec.Flavor{VCPUs: 4, MemoryMB: 256},
			order: "memory.limit_in_bytes memory.memsw.limit_in_bytes ", cpuset: "0-3", quota: 400000},
		{name: "pinned lifts the quota", to: spec.Flavor{VCPUs: 2, MemoryMB: 256, DedicatedCPUs: "2-3"},
			order: "memory.limit_in_bytes memory.memsw.limit_in_bytes ", cpuset: "2-3", quota: -1},
		{name: "disk quota cannot change", to: spec.Flavor{VCPUs: 1, MemoryMB: 256, RootGB: 2}, rootQuota: true, storage: "1G",
			wantErr: driver.ErrUnsupported},
		{name: "disk quota unchanged is fine", to: spec.Flavor{VCPUs: 1, MemoryMB: 512, RootGB: 1}, rootQuota: true, storage: "1G",
			order: "memory.memsw.limit_in_bytes memory.limit_in_bytes ", quota: 100000},
		{name: "invalid flavor", to: spec.Flavor{VCPUs: 1, MemoryMB: 1}, wantErr: spec.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			o.RootDiskQuota = tc.rootQuota
			c := *cur
			if tc.storage != "" {
				c.StorageOpt = map[string]string{"size": tc.storage}
			}
			p, err := driver.PlanResize(uuid1, tc.to, &c, o)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := order(p); got != tc.order {
				t.Errorf("memory write order %q, want %q", got, tc.order)
			}
			if tc.cpuset != "" && p.Resources.CpusetCpus != tc.cpuset {
				t.Errorf("cpuset %q, want %q", p.Resources.CpusetCpus, tc.cpuset)
			}
			if p.Resources.CPUQuota != tc.quota {
				t.Errorf("cpu quota %d, want %d", p.Resources.CPUQuota, tc.quota)
			}
			if p.Resources.Memory != tc.to.MemoryMB<<20 || p.Resources.MemorySwap != p.Resources.Memory {
				t.Errorf("memory %d swap %d", p.Resources.Memory, p.Resources.MemorySwap)
			}
		})
	}
	if _, err := driver.PlanResize(uuid1, spec.Flavor{VCPUs: 1, MemoryMB: 256}, nil, opts); !errors.Is(err, spec.ErrInvalid) {
		t.Fatalf("nil host config: %v", err)
	}
}
