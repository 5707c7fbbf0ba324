package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

// Field names of the Engine API 1.41 (docker 20.10) create request. The
// moby client no longer drops fields an older daemon does not know, so any
// non-zero field outside these lists would be a silent no-op (or worse) on
// the daemons this project targets.
var api141 = map[string]string{
	"Config": `Hostname Domainname User AttachStdin AttachStdout AttachStderr ExposedPorts Tty OpenStdin StdinOnce
		Env Cmd Healthcheck ArgsEscaped Image Volumes WorkingDir Entrypoint NetworkDisabled MacAddress OnBuild
		Labels StopSignal StopTimeout Shell`,
	"HostConfig": `Binds ContainerIDFile LogConfig NetworkMode PortBindings RestartPolicy AutoRemove VolumeDriver
		VolumesFrom CapAdd CapDrop CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links
		OomScoreAdj PidMode Privileged PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt Tmpfs UTSMode
		UsernsMode ShmSize Sysctls Runtime ConsoleSize Isolation CpuShares Memory CgroupParent BlkioWeight
		BlkioWeightDevice BlkioDeviceReadBps BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps
		CpuPeriod CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus CpusetMems Devices DeviceCgroupRules
		DeviceRequests KernelMemory KernelMemoryTCP MemoryReservation MemorySwap MemorySwappiness NanoCpus
		OomKillDisable Init PidsLimit Ulimits CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth Mounts
		MaskedPaths ReadonlyPaths`,
	"Mount":         `Target Source Type ReadOnly Consistency BindOptions VolumeOptions TmpfsOptions`,
	"LogConfig":     `Type Config`,
	"RestartPolicy": `Name MaximumRetryCount`,
}

func isZeroJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !isZeroJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

func checkKeys(t *testing.T, what string, obj map[string]any) {
	t.Helper()
	allowed := map[string]bool{}
	for _, k := range strings.Fields(api141[what]) {
		allowed[k] = true
	}
	for k, v := range obj {
		if isZeroJSON(v) {
			continue
		}
		if !allowed[k] {
			t.Errorf("%s.%s = %v is not in Engine API 1.41", what, k, v)
		}
		switch k {
		case "Mounts":
			for _, m := range v.([]any) {
				checkKeys(t, "Mount", m.(map[string]any))
			}
		case "LogConfig", "RestartPolicy":
			checkKeys(t, k, v.(map[string]any))
		}
	}
}

func TestSpecsWithinAPI141(t *testing.T) {
	inst := testInst()
	inst.ConfigDriveDir = "/var/lib/nca/cd"
	inst.Flavor.DedicatedCPUs = "0-1"
	opts := testOpts()
	opts.RootDiskQuota = true
	ct, err := Container(inst, opts)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Sandbox(inst, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Spec{ct, sb} {
		for what, v := range map[string]any{"Config": s.Config, "HostConfig": s.HostConfig} {
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil {
				t.Fatal(err)
			}
			checkKeys(t, what, obj)
		}
	}
}
