package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

// HostFacts are the raw capacities of this host as the driver sees them. They are gathered once per
// audit by ReadHostFacts; everything derived from them below is pure so it can be table-tested.
type HostFacts struct {
	VCPUs         int
	MemoryMB      int
	DiskGB        int // total size of the filesystem holding instances_path
	DiskFreeGB    int
	Arch          string // nova's arch name, e.g. x86_64
	CPUVendor     string
	CPUModel      string
	CPUFeatures   []string
	Sockets       int
	CoresPerSock  int
	ThreadsPerCor int
	// HypervisorVersion is Docker's engine version packed as nova packs versions (major*1e6+minor*1e3+patch).
	HypervisorVersion int
}

// Ratios are the allocation ratios as configured. Zero means "not set": nova's Zed defaults for
// [DEFAULT] *_allocation_ratio are None, and only then do initial_* and placement's values apply.
type Ratios struct {
	CPU, RAM, Disk                      float64
	InitialCPU, InitialRAM, InitialDisk float64
}

// Reserved are the reserved_host_* options.
type Reserved struct {
	MemoryMB int
	DiskMB   int
	CPUs     int
}

// Usage is what the instances on this host consume, summed as nova's resource tracker does.
type Usage struct {
	VCPUs     int
	MemoryMB  int
	DiskGB    int
	Instances int
	// Stats are ComputeNode.stats: nova's scheduler weighers and filters read num_instances,
	// io_workload, failed_builds and the per-state counters by these exact names.
	Stats map[string]string
}

// InstanceUsage is the part of an instance the resource tracker counts.
type InstanceUsage struct {
	VCPUs, MemoryMB, RootGB, EphemeralGB, SwapMB int
	VMState, TaskState, OSType, ProjectID        string
}

// CountUsage sums instance usage like nova's ResourceTracker._update_usage and compute/stats.py.
func CountUsage(insts []InstanceUsage, failedBuilds int) Usage {
	u := Usage{Stats: map[string]string{}}
	counters := map[string]int{}
	ioWorkload := 0
	for _, in := range insts {
		u.VCPUs += in.VCPUs
		u.MemoryMB += in.MemoryMB
		u.DiskGB += in.RootGB + in.EphemeralGB + in.SwapMB/1024
		u.Instances++
		counters["num_vm_"+in.VMState]++
		task := in.TaskState
		if task == "" {
			task = "None"
		}
		counters["num_task_"+task]++
		os := in.OSType
		if os == "" {
			os = "None"
		}
		counters["num_os_type_"+os]++
		counters["num_proj_"+in.ProjectID]++
		// nova counts builds, resizes, snapshots and rebuilds as I/O-heavy work.
		switch {
		case in.VMState == "building":
			ioWorkload++
		case in.TaskState == "resize_migrating", in.TaskState == "rebuilding", in.TaskState == "resize_prep",
			in.TaskState == "image_snapshot", in.TaskState == "image_backup", in.TaskState == "rescuing",
			in.TaskState == "unshelving":
			ioWorkload++
		}
	}
	for k, v := range counters {
		u.Stats[k] = strconv.Itoa(v)
	}
	u.Stats["num_instances"] = strconv.Itoa(u.Instances)
	u.Stats["io_workload"] = strconv.Itoa(ioWorkload)
	u.Stats["failed_builds"] = strconv.Itoa(failedBuilds)
	return u
}

// HypervisorType is what the compute node advertises; "docker" is one of nova's HVType values, so
// ImagePropertiesFilter can steer images tagged hypervisor_type=docker here.
const HypervisorType = "docker"

// VMMode "exe" is nova's mode for containers running an executable rather than a guest kernel.
const VMMode = "exe"

// CPUInfo renders the cpu_info JSON string nova stores; the hypervisors API json.loads it.
func CPUInfo(f HostFacts) string {
	feats := append([]string(nil), f.CPUFeatures...)
	sort.Strings(feats)
	b, _ := json.Marshal(map[string]any{
		"arch": f.Arch, "model": f.CPUModel, "vendor": f.CPUVendor, "features": feats,
		"topology": map[string]int{"sockets": f.Sockets, "cores": f.CoresPerSock, "threads": f.ThreadsPerCor},
	})
	return string(b)
}

// ratioOrInitial is the ComputeNode record's ratio: the configured one, else the initial_* default.
func ratioOrInitial(set, initial float64) float64 {
	if set > 0 {
		return set
	}
	return initial
}

// ComputeNodeFields are the ComputeNode fields the compute owns, as nova's
// ComputeNode.update_from_virt_driver and the resource tracker set them. Values are JSON-ready.
func ComputeNodeFields(host, hostIP string, f HostFacts, r Ratios, res Reserved, u Usage) map[string]any {
	memUsed := res.MemoryMB + u.MemoryMB
	diskUsed := int(math.Ceil(float64(res.DiskMB)/1024)) + u.DiskGB
	stats := map[string]string{}
	for k, v := range u.Stats {
		stats[k] = v
	}
	return map[string]any{
		"host":                  host,
		"hypervisor_hostname":   host,
		"hypervisor_type":       HypervisorType,
		"hypervisor_version":    f.HypervisorVersion,
		"cpu_info":              CPUInfo(f),
		"vcpus":                 f.VCPUs,
		"memory_mb":             f.MemoryMB,
		"local_gb":              f.DiskGB,
		"vcpus_used":            res.CPUs + u.VCPUs,
		"memory_mb_used":        memUsed,
		"local_gb_used":         diskUsed,
		"free_ram_mb":           f.MemoryMB - memUsed,
		"free_disk_gb":          f.DiskGB - diskUsed,
		"disk_available_least":  f.DiskFreeGB,
		"running_vms":           u.Instances,
		"current_workload":      atoiOr0(u.Stats["io_workload"]),
		"host_ip":               hostIP,
		"numa_topology":         nil,
		"metrics":               "[]",
		"stats":                 stats,
		"cpu_allocation_ratio":  ratioOrInitial(r.CPU, r.InitialCPU),
		"ram_allocation_ratio":  ratioOrInitial(r.RAM, r.InitialRAM),
		"disk_allocation_ratio": ratioOrInitial(r.Disk, r.InitialDisk),
	}
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// InventoryPlan computes the provider inventory the way nova's drivers' update_provider_tree does,
// with _get_allocation_ratios' precedence: a configured ratio wins; else a ratio already in placement
// is kept (operators may tune it there); else the initial_* default. Classes with total 0 are omitted
// because placement rejects them.
func InventoryPlan(f HostFacts, r Ratios, res Reserved, current cloud.Inventories) cloud.Inventories {
	ratio := func(rc string, set, initial float64) float64 {
		if set > 0 {
			return set
		}
		if cur, ok := current[rc]; ok && cur.AllocationRatio > 0 {
			return cur.AllocationRatio
		}
		return initial
	}
	out := cloud.Inventories{}
	add := func(rc string, total, reserved int, set, initial float64) {
		if total <= 0 {
			return
		}
		out[rc] = cloud.Inventory{Total: total, Reserved: reserved, MinUnit: 1, MaxUnit: total, StepSize: 1,
			AllocationRatio: ratio(rc, set, initial)}
	}
	add("VCPU", f.VCPUs, res.CPUs, r.CPU, r.InitialCPU)
	add("MEMORY_MB", f.MemoryMB, res.MemoryMB, r.RAM, r.InitialRAM)
	add("DISK_GB", f.DiskGB, int(math.Ceil(float64(res.DiskMB)/1024)), r.Disk, r.InitialDisk)
	return out
}

// Capability traits this driver asserts. COMPUTE_IMAGE_TYPE_* name every disk format the image
// pipeline accepts, so a scheduler with query_placement_for_image_type_support only sends those here.
var driverTraits = []string{
	"COMPUTE_NODE",
	"COMPUTE_IMAGE_TYPE_QCOW2",
	"COMPUTE_IMAGE_TYPE_RAW",
	"COMPUTE_SAME_HOST_COLD_MIGRATE",
}

// Traits nova manages on behalf of drivers; a driver that lacks the capability must remove them,
// while any other trait on the provider belongs to the operator and is preserved.
var managedTraits = []string{
	"COMPUTE_NODE", "COMPUTE_STATUS_DISABLED",
	"COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_IMAGE_TYPE_AMI", "COMPUTE_IMAGE_TYPE_AKI",
	"COMPUTE_IMAGE_TYPE_ARI", "COMPUTE_IMAGE_TYPE_ISO", "COMPUTE_IMAGE_TYPE_VDI", "COMPUTE_IMAGE_TYPE_VHD",
	"COMPUTE_IMAGE_TYPE_VHDX", "COMPUTE_IMAGE_TYPE_VMDK", "COMPUTE_IMAGE_TYPE_PLOOP",
	"COMPUTE_SAME_HOST_COLD_MIGRATE", "COMPUTE_NET_ATTACH_INTERFACE", "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
	"COMPUTE_DEVICE_TAGGING", "COMPUTE_VOLUME_ATTACH_WITH_TAG", "COMPUTE_VOLUME_EXTEND",
	"COMPUTE_VOLUME_MULTI_ATTACH", "COMPUTE_TRUSTED_CERTS", "COMPUTE_ACCELERATORS", "COMPUTE_RESCUE_BFV",
}

// TraitsPlan is ResourceTracker._get_traits: keep foreign traits, set the driver's capability
// traits, and follow the service's disabled flag with COMPUTE_STATUS_DISABLED.
func TraitsPlan(current []string, disabled bool) []string {
	managed := map[string]bool{}
	for _, t := range managedTraits {
		managed[t] = true
	}
	set := map[string]bool{}
	for _, t := range current {
		if !managed[t] {
			set[t] = true
		}
	}
	for _, t := range driverTraits {
		set[t] = true
	}
	if disabled {
		set["COMPUTE_STATUS_DISABLED"] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// PackVersion packs "20.10.24+dfsg1" as nova's utils.convert_version_to_int does (20010024).
func PackVersion(v string) (int, error) {
	v = strings.SplitN(v, "+", 2)[0]
	v = strings.SplitN(v, "-", 2)[0]
	parts := strings.Split(v, ".")
	n := 0
	for i := 0; i < 3; i++ {
		x := 0
		if i < len(parts) {
			var err error
			if x, err = strconv.Atoi(parts[i]); err != nil {
				return 0, fmt.Errorf("version %q: %w", v, err)
			}
		}
		n = n*1000 + x
	}
	return n, nil
}
