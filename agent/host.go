package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// ReadHostFacts gathers this host's capacities from procRoot (normally /proc) and the filesystem
// holding instancesPath. Docker's version is filled in by the caller, which owns the Docker client.
func ReadHostFacts(procRoot, instancesPath string) (HostFacts, error) {
	f := HostFacts{Arch: novaArch(runtime.GOARCH), Sockets: 1, CoresPerSock: 1, ThreadsPerCor: 1}
	if err := readCPUInfo(filepath.Join(procRoot, "cpuinfo"), &f); err != nil {
		return f, err
	}
	mem, err := readMemTotalKB(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return f, err
	}
	f.MemoryMB = int(mem / 1024)
	if err := os.MkdirAll(instancesPath, 0o755); err != nil {
		return f, fmt.Errorf("create instances_path %s: %w", instancesPath, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(instancesPath, &st); err != nil {
		return f, fmt.Errorf("statfs %s: %w", instancesPath, err)
	}
	const gib = 1 << 30
	f.DiskGB = int(st.Blocks * uint64(st.Bsize) / gib)
	f.DiskFreeGB = int(st.Bavail * uint64(st.Bsize) / gib)
	return f, nil
}

func novaArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return goarch
}

func readCPUInfo(path string, f *HostFacts) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read cpu info: %w", err)
	}
	defer file.Close()
	sockets := map[string]bool{}
	var siblings, cores int
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			f.VCPUs++
		case "vendor_id":
			f.CPUVendor = cpuVendor(v)
		case "model name":
			f.CPUModel = v
		case "physical id":
			sockets[v] = true
		case "siblings":
			siblings, _ = strconv.Atoi(v)
		case "cpu cores":
			cores, _ = strconv.Atoi(v)
		case "flags":
			if f.CPUFeatures == nil {
				f.CPUFeatures = strings.Fields(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read cpu info: %w", err)
	}
	if f.VCPUs == 0 {
		return fmt.Errorf("read cpu info %s: no processor entries", path)
	}
	if len(sockets) > 0 {
		f.Sockets = len(sockets)
	}
	if cores > 0 {
		f.CoresPerSock = cores
		if siblings >= cores {
			f.ThreadsPerCor = siblings / cores
		}
	}
	return nil
}

// cpuVendor maps cpuid vendor strings to the short names libvirt reports, which nova shows as-is.
func cpuVendor(id string) string {
	switch id {
	case "GenuineIntel":
		return "Intel"
	case "AuthenticAMD":
		return "AMD"
	}
	return id
}

func readMemTotalKB(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read memory info: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			return strconv.ParseUint(fs[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("read memory info %s: no MemTotal", path)
}
