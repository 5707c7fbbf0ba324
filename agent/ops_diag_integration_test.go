//go:build integration

package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// nova-api's own code (python3-nova) must read our Diagnostics: deserialize it as the RPC
// serializer does and render it with the server-diagnostics view of microversion 2.48.
const novaDiagnosticsView = `
import json, sys
from nova import objects
objects.register_all()
from nova.objects import base
from nova.api.openstack.compute.views import server_diagnostics
d = base.NovaObject.obj_from_primitive(json.load(open(sys.argv[1])))
print(json.dumps(server_diagnostics.ViewBuilder().instance_diagnostics(d)))
`

func TestDiagnosticsReadByNovaAPI(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/nova/api/openstack/compute/views/server_diagnostics.py"); err != nil {
		t.Fatalf("python3-nova is needed (tests/aio/up.sh installs it): %v", err)
	}
	now := time.Now()
	o, err := DiagnosticsObject(sampleDiagnostics(now), objects.PowerRunning, false, []string{"fa:16:3e:00:00:01"}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(o)
	f := filepath.Join(t.TempDir(), "diag.json")
	if err := os.WriteFile(f, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "-c", novaDiagnosticsView, f).Output()
	if err != nil {
		t.Fatalf("nova could not read our Diagnostics: %v\n%s", err, out)
	}
	var view struct {
		State       string           `json:"state"`
		Driver      *string          `json:"driver"`
		Hypervisor  string           `json:"hypervisor"`
		Uptime      int              `json:"uptime"`
		NumCPUs     int              `json:"num_cpus"`
		CPUDetails  []map[string]any `json:"cpu_details"`
		NICDetails  []map[string]any `json:"nic_details"`
		Memory      map[string]any   `json:"memory_details"`
		ConfigDrive bool             `json:"config_drive"`
	}
	if err := json.Unmarshal(out, &view); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("nova-api would show: %s", out)
	if view.State != "running" || view.Driver != nil || view.Hypervisor != "docker" || view.Uptime != 90 || view.NumCPUs != 2 ||
		len(view.CPUDetails) != 2 || len(view.NICDetails) != 1 || view.NICDetails[0]["mac_address"] != "fa:16:3e:00:00:01" ||
		view.Memory["maximum"] != float64(512) || view.ConfigDrive {
		t.Errorf("view %+v", view)
	}
}
