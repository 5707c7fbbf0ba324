package agent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"

	"github.com/nova-container-agent/nova-container-agent/driver/vif"
	"github.com/nova-container-agent/nova-container-agent/ovs"
)

// OVSPorts is the integration bridge's port table (ovs.Client).
type OVSPorts interface {
	AddPort(ctx context.Context, spec ovs.PortSpec) error
	DeletePort(ctx context.Context, name string) error
}

// Plumber creates veth pairs into network namespaces (vif.Plumber).
type Plumber interface {
	Plug(ctx context.Context, netnsPath string, plan vif.Plan) (vif.Outcome, error)
	Unplug(ctx context.Context, portID string) error
	Announce(ctx context.Context, netnsPath string, plan vif.Plan) error
}

var (
	_ OVSPorts = (*ovs.Client)(nil)
	_ Plumber  = (*vif.Plumber)(nil)
)

// Plugger plugs an instance's ports the way os-vif's OVS plugin does for a VM tap device: a
// veth whose host end (tap<port id>) joins the integration bridge with Neutron's port identity
// in external_ids, and whose other end is the instance's eth<N>.
type Plugger struct {
	OVS     OVSPorts
	Plumber Plumber
	// PortPlugged, when set, is told about each port on the bridge; the built-in L2 agent uses it
	// to report the device to neutron at once instead of at its next poll.
	PortPlugged func(ctx context.Context, portID string)
}

var _ VIFPlugger = (*Plugger)(nil)

// Plug implements VIFPlugger. It is idempotent: plugging a plugged port repairs it if needed.
func (p *Plugger) Plug(ctx context.Context, instanceUUID, netnsPath string, vifs []VIF) error {
	for i, v := range vifs {
		plan, err := VIFPlan(v, i)
		if err != nil {
			return fmt.Errorf("plan port %s: %w", v.ID, err)
		}
		outcome, err := p.Plumber.Plug(ctx, netnsPath, plan)
		if err != nil {
			return err
		}
		if outcome == vif.Created || outcome == vif.Recreated {
			// A new host-end device under an existing bridge row (the sandbox namespace was
			// lost with its veth, e.g. by a host or dockerd restart): OVS's userspace datapath
			// keeps polling the dead device and never reads the new one, so the guest can
			// receive but not send. Only removing the row, letting ovs-vswitchd apply that
			// (DeletePort waits for it), then adding it again makes it open the device anew.
			if err := p.OVS.DeletePort(ctx, plan.HostName()); err != nil {
				return fmt.Errorf("detach stale port %s from the integration bridge: %w", v.ID, err)
			}
		}
		spec := ovs.PortSpec{Name: plan.HostName(), PortID: v.ID, MAC: plan.MAC, InstanceUUID: instanceUUID}
		if err := p.OVS.AddPort(ctx, spec); err != nil {
			return fmt.Errorf("attach port %s to the integration bridge: %w", v.ID, err)
		}
		if p.PortPlugged != nil {
			p.PortPlugged(ctx, v.ID)
		}
	}
	return nil
}

// Unplug implements VIFPlugger; missing ports are not an error.
// Announce sends a gratuitous ARP for each IPv4 address of the instance's ports from inside
// its namespace, so machines that mapped a reused address to a deleted instance's MAC learn
// the new one at once instead of after their neighbour entry expires.
func (p *Plugger) Announce(ctx context.Context, netnsPath string, vifs []VIF) error {
	var errs []error
	for i, v := range vifs {
		plan, err := VIFPlan(v, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("plan port %s: %w", v.ID, err))
			continue
		}
		if err := p.Plumber.Announce(ctx, netnsPath, plan); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Plugger) Unplug(ctx context.Context, instanceUUID string, vifs []VIF) error {
	var errs []error
	for _, v := range vifs {
		if err := p.OVS.DeletePort(ctx, vif.TapName(v.ID)); err != nil {
			errs = append(errs, fmt.Errorf("detach port %s of %s: %w", v.ID, instanceUUID, err))
		}
		if err := p.Plumber.Unplug(ctx, v.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove veth of port %s: %w", v.ID, err))
		}
	}
	return errors.Join(errs...)
}

// ReplugHook hands the driver's replug requests to the manager once it exists.
type ReplugHook struct{ m atomic.Pointer[Manager] }

// Replug satisfies driver.Replug.
func (h *ReplugHook) Replug(ctx context.Context, uuid, netns string) error {
	m := h.m.Load()
	if m == nil {
		return fmt.Errorf("replug %s: the compute manager is not running yet", uuid)
	}
	return m.Replug(ctx, uuid, netns)
}

// Replug plugs an instance's ports, as its info cache records them, into netns: the sandbox
// namespace the driver found new when it restarted a guest on its own. The ports are bound
// and active already; only the wiring is redone.
func (m *Manager) Replug(ctx context.Context, uuid, netns string) error {
	if m.lc == nil {
		return fmt.Errorf("replug %s: no container lifecycle", uuid)
	}
	actx := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	inst, err := m.cond.InstanceGetByUUID(ctx, actx, uuid, []string{"info_cache"})
	if err != nil {
		return fmt.Errorf("replug %s: %w", uuid, err)
	}
	if inst.Host() != m.opts.Host {
		return fmt.Errorf("replug %s: instance is on host %q, not %q", uuid, inst.Host(), m.opts.Host)
	}
	m.log.Info("guest restarted into a new sandbox namespace: re-plugging its ports", "instance", uuid, "netns", netns)
	return m.replug(inst)(ctx, netns)
}
