package agent

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

func TestPackVersion(t *testing.T) {
	for in, want := range map[string]int{"20.10.24+dfsg1": 20010024, "1.41": 1041000, "28.2.2": 28002002} {
		got, err := PackVersion(in)
		if err != nil || got != want {
			t.Errorf("PackVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := PackVersion("x.y"); err == nil {
		t.Error("PackVersion(x.y): want error")
	}
}

func TestInventoryPlanRatioPrecedence(t *testing.T) {
	f := HostFacts{VCPUs: 2, MemoryMB: 24105, DiskGB: 251}
	r := Ratios{RAM: 1.0, InitialCPU: 16, InitialRAM: 1.5, InitialDisk: 1}
	res := Reserved{MemoryMB: 512, DiskMB: 1500, CPUs: 0}
	current := cloud.Inventories{"VCPU": {AllocationRatio: 8}, "MEMORY_MB": {AllocationRatio: 3}}
	got := InventoryPlan(f, r, res, current)
	want := cloud.Inventories{
		// placement's ratio kept: not configured, already present
		"VCPU": {Total: 2, Reserved: 0, MinUnit: 1, MaxUnit: 2, StepSize: 1, AllocationRatio: 8},
		// configured ratio overrides placement
		"MEMORY_MB": {Total: 24105, Reserved: 512, MinUnit: 1, MaxUnit: 24105, StepSize: 1, AllocationRatio: 1},
		// absent from placement: initial ratio; reserved rounds MB up to whole GB
		"DISK_GB": {Total: 251, Reserved: 2, MinUnit: 1, MaxUnit: 251, StepSize: 1, AllocationRatio: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("InventoryPlan =\n%+v\nwant\n%+v", got, want)
	}
	if inv := InventoryPlan(HostFacts{VCPUs: 1, MemoryMB: 10}, r, res, nil); len(inv) != 2 {
		t.Errorf("zero disk must be omitted, got %+v", inv)
	}
}

func TestTraitsPlan(t *testing.T) {
	cur := []string{"CUSTOM_RACK_7", "COMPUTE_STATUS_DISABLED", "COMPUTE_VOLUME_EXTEND", "HW_CPU_X86_AVX2"}
	got := TraitsPlan(cur, false)
	want := []string{"COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_NODE",
		"COMPUTE_SAME_HOST_COLD_MIGRATE", "CUSTOM_RACK_7", "HW_CPU_X86_AVX2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("enabled: got %v want %v", got, want)
	}
	got = TraitsPlan(got, true)
	if !slices.Contains(got, "COMPUTE_STATUS_DISABLED") || len(got) != len(want)+1 {
		t.Fatalf("disabled: got %v", got)
	}
}

func TestCountUsageAndComputeNodeFields(t *testing.T) {
	u := CountUsage([]InstanceUsage{
		{VCPUs: 1, MemoryMB: 512, RootGB: 1, VMState: "active", ProjectID: "p1"},
		{VCPUs: 2, MemoryMB: 2048, RootGB: 20, SwapMB: 2048, VMState: "building", ProjectID: "p1"},
	}, 3)
	if u.VCPUs != 3 || u.MemoryMB != 2560 || u.DiskGB != 23 || u.Instances != 2 {
		t.Fatalf("usage = %+v", u)
	}
	for k, v := range map[string]string{"num_instances": "2", "num_vm_active": "1", "num_vm_building": "1",
		"num_task_None": "2", "num_proj_p1": "2", "io_workload": "1", "failed_builds": "3", "num_os_type_None": "2"} {
		if u.Stats[k] != v {
			t.Errorf("stats[%s] = %q, want %q", k, u.Stats[k], v)
		}
	}
	f := HostFacts{VCPUs: 2, MemoryMB: 24105, DiskGB: 251, DiskFreeGB: 80, Arch: "x86_64", HypervisorVersion: 20010024}
	cn := ComputeNodeFields("nca-1", "127.0.0.1", f, Ratios{InitialCPU: 16, InitialRAM: 1.5, InitialDisk: 1},
		Reserved{MemoryMB: 512}, u)
	checks := map[string]any{"memory_mb_used": 3072, "free_ram_mb": 24105 - 3072, "local_gb_used": 23,
		"free_disk_gb": 228, "vcpus_used": 3, "running_vms": 2, "cpu_allocation_ratio": 16.0,
		"hypervisor_type": "docker", "hypervisor_hostname": "nca-1", "metrics": "[]"}
	for k, v := range checks {
		if !reflect.DeepEqual(cn[k], v) {
			t.Errorf("%s = %#v, want %#v", k, cn[k], v)
		}
	}
	var ci map[string]any
	if err := json.Unmarshal([]byte(cn["cpu_info"].(string)), &ci); err != nil || ci["arch"] != "x86_64" {
		t.Errorf("cpu_info %v: %v", cn["cpu_info"], err)
	}
}

func TestReadHostFacts(t *testing.T) {
	f, err := ReadHostFacts("testdata/proc", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if f.VCPUs < 1 || f.MemoryMB != 24105 || f.DiskGB < 1 || f.CPUVendor == "" {
		t.Fatalf("facts = %+v", f)
	}
	if _, err := ReadHostFacts(t.TempDir(), t.TempDir()); err == nil {
		t.Fatal("missing /proc files: want error")
	}
}
