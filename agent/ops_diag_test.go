package agent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

func sampleDiagnostics(now time.Time) driver.Diagnostics {
	return driver.Diagnostics{PerCPUNs: []uint64{123456789, 987654321}, MemoryLimit: 512 << 20, MemoryBytes: 97 << 20,
		NICs: []driver.NICStats{{Name: "eth0", RxBytes: 1500, RxPackets: 10, TxBytes: 900, TxPackets: 7, RxDrop: 1},
			{Name: "docker-made0", RxBytes: 5}},
		StartedAt: now.Add(-90 * time.Second)}
}

func TestDiagnosticsObject(t *testing.T) {
	now := time.Now()
	o, err := DiagnosticsObject(sampleDiagnostics(now), objects.PowerRunning, true, []string{"fa:16:3e:00:00:01"}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var prim struct {
		Name    string                     `json:"nova_object.name"`
		Version string                     `json:"nova_object.version"`
		Data    map[string]json.RawMessage `json:"nova_object.data"`
	}
	if err := json.Unmarshal(raw, &prim); err != nil {
		t.Fatal(err)
	}
	if prim.Name != "Diagnostics" || prim.Version != "1.0" {
		t.Fatalf("object %s %s", prim.Name, prim.Version)
	}
	want := map[string]string{"state": `"running"`, "hypervisor": `"docker"`, "hypervisor_os": `"linux"`, "uptime": "90",
		"config_drive": "true", "num_cpus": "2", "num_nics": "1", "num_disks": "0", "disk_details": "[]"}
	data := prim.Data
	for f, v := range want {
		if string(data[f]) != v {
			t.Errorf("%s = %s, want %s", f, data[f], v)
		}
	}
	if _, ok := data["driver"]; ok {
		t.Errorf("driver is set (%s): nova's enum has no container driver, it must stay unset", data["driver"])
	}
	var nics []struct {
		Data map[string]any `json:"nova_object.data"`
	}
	if err := json.Unmarshal(data["nic_details"], &nics); err != nil || len(nics) != 1 {
		t.Fatalf("nic_details %s: %v", data["nic_details"], err)
	}
	if nics[0].Data["mac_address"] != "fa:16:3e:00:00:01" || nics[0].Data["rx_octets"] != float64(1500) || nics[0].Data["rx_drop"] != float64(1) {
		t.Errorf("nic %v", nics[0].Data)
	}
	var mem struct {
		Data map[string]any `json:"nova_object.data"`
	}
	if err := json.Unmarshal(data["memory_details"], &mem); err != nil || mem.Data["maximum"] != float64(512) || mem.Data["used"] != float64(97) {
		t.Errorf("memory_details %s: %v", data["memory_details"], err)
	}
}
