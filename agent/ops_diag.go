package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

// opInstanceDiagnostics is get_instance_diagnostics (API microversion 2.48): nova's
// Diagnostics object from the container's cgroups and its sandbox's interface counters.
// "driver" is left unset: nova's HypervisorDriver enum has no value for containers, and
// nova-api shows an unset field as null rather than a false "libvirt". A container's root
// is an overlay, not a block device, so it reports no disks.
func (m *Manager) opInstanceDiagnostics(ctx context.Context, _ *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	dg, ok := m.lc.Driver.(diagnoser)
	if !ok {
		return nil, notSupported("get_instance_diagnostics")
	}
	d, err := dg.Diagnostics(ctx, uuid)
	if errors.Is(err, driver.ErrNotRunning) {
		return nil, novaFailure("InstanceInvalidState", fmt.Sprintf("Instance %s in power state %s. Cannot get_instance_diagnostics while the instance is in this state.", uuid, "shutdown"), 409,
			map[string]any{"attr": "power state", "instance_uuid": uuid, "state": "shutdown", "method": "get_instance_diagnostics"})
	}
	if err != nil {
		return nil, err
	}
	power, err := m.powerState(ctx, uuid)
	if err != nil {
		return nil, err
	}
	return DiagnosticsObject(d, power, inst.ConfigDrive() != "", vifMACs(inst), time.Now())
}

// vifMACs lists the MAC of each port in plug order (eth0, eth1, ...).
func vifMACs(inst *objects.Instance) []string {
	vifs, err := instanceVIFs(inst)
	if err != nil {
		return nil
	}
	out := make([]string, len(vifs))
	for i, v := range vifs {
		out[i] = v.Address
	}
	return out
}

// DiagnosticsObject builds nova's Diagnostics 1.0 from one driver sample; macs[i] is eth<i>'s.
func DiagnosticsObject(d driver.Diagnostics, power objects.PowerState, configDrive bool, macs []string, now time.Time) (*objects.Object, error) {
	o := objects.New("Diagnostics", "1.0")
	var uptime any
	if !d.StartedAt.IsZero() && now.After(d.StartedAt) {
		uptime = int64(now.Sub(d.StartedAt).Seconds())
	}
	mem := objects.New("MemoryDiagnostics", "1.0")
	set := func(o *objects.Object, f string, v any) error {
		if err := o.Set(f, v); err != nil {
			return fmt.Errorf("diagnostics field %s: %w", f, err)
		}
		return nil
	}
	if err := errors.Join(set(mem, "maximum", int64(d.MemoryLimit>>20)), set(mem, "used", int64(d.MemoryBytes>>20))); err != nil {
		return nil, err
	}
	cpus := make([]any, 0, len(d.PerCPUNs))
	for i, ns := range d.PerCPUNs {
		c := objects.New("CpuDiagnostics", "1.0")
		if err := errors.Join(set(c, "id", i), set(c, "time", ns), set(c, "utilisation", nil)); err != nil {
			return nil, err
		}
		cpus = append(cpus, c)
	}
	nics := []any{}
	for _, n := range d.NICs {
		var idx int
		if _, err := fmt.Sscanf(n.Name, "eth%d", &idx); err != nil {
			continue // lo and anything the guest created itself
		}
		nic := objects.New("NicDiagnostics", "1.0")
		var mac any
		if idx < len(macs) {
			mac = macs[idx]
		}
		for f, v := range map[string]any{"mac_address": mac, "rx_octets": n.RxBytes, "rx_errors": n.RxErrors, "rx_drop": n.RxDrop,
			"rx_packets": n.RxPackets, "rx_rate": nil, "tx_octets": n.TxBytes, "tx_errors": n.TxErrors, "tx_drop": n.TxDrop,
			"tx_packets": n.TxPackets, "tx_rate": nil} {
			if err := set(nic, f, v); err != nil {
				return nil, err
			}
		}
		nics = append(nics, nic)
	}
	for f, v := range map[string]any{"state": power.String(), "hypervisor": "docker", "hypervisor_os": "linux",
		"uptime": uptime, "config_drive": configDrive, "memory_details": mem, "cpu_details": cpus,
		"nic_details": nics, "disk_details": []any{}, "num_cpus": len(cpus), "num_nics": len(nics), "num_disks": 0} {
		if err := set(o, f, v); err != nil {
			return nil, err
		}
	}
	return o, nil
}
