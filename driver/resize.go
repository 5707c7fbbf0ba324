package driver

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// ResizePlan is what a flavor change rewrites on the host: the instance
// container's own limits (docker update) and its parent cgroup's, in a
// write order the kernel accepts.
type ResizePlan struct {
	// Resources is the docker update body. Docker reads zero values as
	// "unchanged", so every limit the flavor sets is given explicitly.
	Resources container.Resources
	// Parent are the per-instance parent cgroup files, ordered.
	Parent []spec.CgroupFile
}

// PlanResize computes the limits of instance id under flavor to. cur is
// the container's HostConfig as inspected now: its memory limit decides
// the order of the memory and memsw writes (the kernel refuses a memsw
// limit below the memory limit of the same cgroup, so growing writes memsw
// first and shrinking writes memory first), and its storage size tells
// whether the root disk would have to change. It is pure; nothing is
// changed when it fails.
//
// What a running container cannot have changed stays as created: the
// NUM_CPUS environment variable and the io.nca.flavor label (Docker has no
// API to edit them without recreating the container, which would lose its
// writable layer, i.e. the guest's data). nproc, lxcfs' /proc/cpuinfo and
// /proc/meminfo, free and the cgroup limits all follow the new flavor.
func PlanResize(id string, to spec.Flavor, cur *container.HostConfig, opts spec.Options) (ResizePlan, error) {
	if err := spec.ValidateUUID(id); err != nil {
		return ResizePlan{}, err
	}
	if err := validateFlavor(to); err != nil {
		return ResizePlan{}, err
	}
	if cur == nil {
		return ResizePlan{}, fmt.Errorf("%w: resize %s: container has no host config", spec.ErrInvalid, id)
	}
	if opts.RootDiskQuota {
		// The writable layer's size is fixed at create (storage-opt size);
		// Docker cannot change it in place.
		have := cur.StorageOpt["size"]
		want := ""
		if to.RootGB > 0 {
			want = strconv.Itoa(to.RootGB) + "G"
		}
		if have != want {
			return ResizePlan{}, fmt.Errorf("resize %s: root disk %q to %q: the container's disk quota cannot change in place: %w", id, have, want, ErrUnsupported)
		}
	}
	mem := to.MemoryMB << 20
	pids := opts.DefaultPidsLimit
	if to.PidsLimit > 0 {
		pids = to.PidsLimit
	}
	res := container.Resources{Memory: mem, MemorySwap: mem, PidsLimit: &pids}
	parent := spec.ParentLimits(to, opts.DefaultPidsLimit)
	if to.DedicatedCPUs != "" {
		res.CpusetCpus = to.DedicatedCPUs
		// -1 lifts a quota a shared flavor had set; 0 would leave it.
		res.CPUQuota = -1
		parent = append(parent, spec.CgroupFile{Controller: "cpu", File: "cpu.cfs_quota_us", Value: "-1"})
	} else {
		res.CPUPeriod = 100000
		res.CPUQuota = int64(to.VCPUs) * 100000
		res.CpusetCpus = spec.SharedCPUSet(id, to.VCPUs, opts.HostCPUs)
		if res.CpusetCpus == "" && opts.HostCPUs > 0 {
			// "" means "unchanged" to docker update; a flavor as large as
			// the host gets every CPU back explicitly.
			res.CpusetCpus = "0-" + strconv.Itoa(opts.HostCPUs-1)
		}
	}
	if mem > cur.Memory {
		parent = memswFirst(parent)
	}
	return ResizePlan{Resources: res, Parent: parent}, nil
}

// memswFirst moves memory.memsw.limit_in_bytes before memory.limit_in_bytes.
func memswFirst(files []spec.CgroupFile) []spec.CgroupFile {
	out := make([]spec.CgroupFile, 0, len(files))
	for _, f := range files {
		if f.File == "memory.memsw.limit_in_bytes" {
			out = append(out, f)
		}
	}
	for _, f := range files {
		if f.File != "memory.memsw.limit_in_bytes" {
			out = append(out, f)
		}
	}
	return out
}

// validateFlavor applies spec.Validate's flavor rules to a flavor alone.
func validateFlavor(f spec.Flavor) error {
	if f.VCPUs < 1 || f.VCPUs > 4096 {
		return fmt.Errorf("%w: flavor %q vcpus %d", spec.ErrInvalid, f.Name, f.VCPUs)
	}
	if f.MemoryMB < 64 || f.MemoryMB > 1<<30 {
		return fmt.Errorf("%w: flavor %q memory_mb %d (want >= 64)", spec.ErrInvalid, f.Name, f.MemoryMB)
	}
	if f.RootGB < 0 || f.PidsLimit < 0 {
		return fmt.Errorf("%w: flavor %q negative root_gb or pids limit", spec.ErrInvalid, f.Name)
	}
	if f.DedicatedCPUs != "" {
		n, err := spec.CountCPUs(f.DedicatedCPUs)
		if err != nil {
			return err
		}
		if n != f.VCPUs {
			return fmt.Errorf("%w: dedicated cpuset %q has %d cpus, flavor %q wants %d", spec.ErrInvalid, f.DedicatedCPUs, n, f.Name, f.VCPUs)
		}
	}
	return nil
}

// Resize is nova's migrate_disk_and_power_off for a same-host resize: it
// shuts the guest down cleanly (SIGRTMIN+3, SIGKILL after timeout), then
// gives the stopped container the limits of flavor to, keeping the same
// container and so its writable layer: the guest's files survive resize
// and revert alike. The instance is left stopped; PowerOn boots it with
// the new limits (finish_migration). Resizing back to the old flavor is
// the same call. Bad input and an impossible change are refused before the
// guest is stopped.
func (d *Driver) Resize(ctx context.Context, id string, to spec.Flavor, timeout time.Duration) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("resize %s: %w", id, err)
	}
	plan, err := PlanResize(id, to, c.HostConfig, d.opts)
	if err != nil {
		return err
	}
	if err := d.unpauseIfPaused(ctx, name); err != nil {
		return fmt.Errorf("resize %s: %w", id, err)
	}
	if err := d.setMarker(id, markSuspended, false); err != nil {
		return err
	}
	// Marker first, as PowerOff does: the die event arrives before stop returns.
	if err := d.setMarker(id, markStopped, true); err != nil {
		return err
	}
	if running(c) || (c.State != nil && c.State.Restarting) {
		if _, err := d.api.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: timeoutSeconds(timeout)}); err != nil {
			return fmt.Errorf("resize %s: %w", id, translate(err, "stop "+name))
		}
	}
	// The parent is the ceiling the guest cannot raise; with the container
	// stopped it has no child cgroup whose limits could conflict.
	if err := d.cgroups.Apply(ctx, spec.CgroupParent(d.opts, id), plan.Parent); err != nil {
		return fmt.Errorf("resize %s: parent cgroup limits: %w", id, err)
	}
	res, err := d.api.ContainerUpdate(ctx, name, client.ContainerUpdateOptions{Resources: &plan.Resources})
	if err != nil {
		return fmt.Errorf("resize %s: %w", id, translate(err, "update "+name))
	}
	for _, w := range res.Warnings {
		d.log.DebugContext(ctx, "docker update warning", "instance", id, "warning", w)
	}
	d.log.DebugContext(ctx, "instance resized", "instance", id, "flavor", to.Name, "vcpus", to.VCPUs, "memory_mb", to.MemoryMB)
	return nil
}
