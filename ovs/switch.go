package ovs

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
)

// FlowApplier is what Switch needs from flows.Applier.
type FlowApplier interface {
	ApplyPlan(ctx context.Context, plan map[string][]flows.Flow) (map[string]flows.Changes, error)
}

var _ FlowApplier = (*flows.Applier)(nil)

// Switch plays neutron's OVS agent for VLAN and flat provider networks: it plugs ports with
// their local VLAN, keeps the local VLAN map, and reconciles our flows after every change.
// Use Client alone instead when neutron's agent owns the flows (compatibility mode).
type Switch struct {
	c     *Client
	vlans *LocalVLANs
	app   FlowApplier
	mu    sync.Mutex // serialises plug/unplug/sync so each flow plan sees a settled state
	// applied is the last plan successfully applied; a plug that leaves the plan unchanged
	// (every port after a network's first) then costs no ovs-ofctl round trip.
	applied map[string][]flows.Flow
}

// NewSwitch returns a Switch over an OVSDB client and a flow applier.
func NewSwitch(c *Client, app FlowApplier) *Switch {
	return &Switch{c: c, vlans: NewLocalVLANs(), app: app}
}

// Client returns the underlying OVSDB client.
func (s *Switch) Client() *Client { return s.c }

// LocalVLANs returns the allocator (read-only use intended).
func (s *Switch) LocalVLANs() *LocalVLANs { return s.vlans }

// Start ensures the bridges, recovers local VLANs from our ports and reconciles the flows.
// Conflicting port records are returned as an error after everything else was recovered.
func (s *Switch) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.c.EnsureBridges(ctx); err != nil {
		return err
	}
	ports, err := s.c.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("start switch: %w", err)
	}
	restoreErr := s.vlans.Restore(ports)
	if err := s.syncLocked(ctx); err != nil {
		return err
	}
	if restoreErr != nil {
		return fmt.Errorf("start switch: recover local vlans: %w", restoreErr)
	}
	return nil
}

// PlugPort puts an instance port on the integration bridge. With a binding it joins the
// network's local VLAN (allocated on first use); without one it is isolated on the dead VLAN
// with an ingress drop flow, as neutron's agent treats unbound ports.
func (s *Switch) PlugPort(ctx context.Context, spec PortSpec, b *Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	spec.Tag, spec.Binding = DeadVLAN, nil
	fresh := false
	if b != nil {
		_, had := s.vlans.Lookup(b.NetworkID)
		v, err := s.vlans.Acquire(*b)
		if err != nil {
			return fmt.Errorf("plug port %s: %w", spec.PortID, err)
		}
		fresh = !had
		spec.Tag, spec.Binding = v, b
	}
	if err := s.c.AddPort(ctx, spec); err != nil {
		if fresh {
			s.vlans.Release(b.NetworkID)
		}
		return err
	}
	if spec.Tag == DeadVLAN {
		if _, err := s.c.OFPort(ctx, spec.Name); err != nil {
			return fmt.Errorf("plug port %s: %w", spec.PortID, err)
		}
	}
	return s.syncChangedLocked(ctx)
}

// UnplugPort removes the named port; when it was the last port of its network the local VLAN
// is released and its two translation flows go away.
func (s *Switch) UnplugPort(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ports, err := s.c.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("unplug port %s: %w", name, err)
	}
	var netID string
	for _, p := range ports {
		if p.Name == name && p.Binding != nil {
			netID = p.Binding.NetworkID
		}
	}
	if err := s.c.DeletePort(ctx, name); err != nil {
		return err
	}
	if netID != "" {
		last := true
		for _, p := range ports {
			if p.Name != name && p.Binding != nil && p.Binding.NetworkID == netID {
				last = false
			}
		}
		if last {
			s.vlans.Release(netID)
		}
	}
	return s.syncChangedLocked(ctx)
}

// SyncFlows reconciles our flows on all bridges with the current state.
func (s *Switch) SyncFlows(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked(ctx)
}

func (s *Switch) syncLocked(ctx context.Context) error { return s.sync(ctx, true) }

func (s *Switch) syncChangedLocked(ctx context.Context) error { return s.sync(ctx, false) }

// sync plans the flows and, when force is set or the plan differs from the last one applied,
// reconciles them against the bridges' actual flows.
func (s *Switch) sync(ctx context.Context, force bool) error {
	cfg := s.c.Config()
	fc := flows.Config{IntegrationBridge: cfg.IntegrationBridge}
	for _, pb := range cfg.PhysicalBridges() {
		intPort, err := s.c.OFPort(ctx, pb.IntPatch)
		if err != nil {
			return fmt.Errorf("sync flows: %w", err)
		}
		physPort, err := s.c.OFPort(ctx, pb.PhysPatch)
		if err != nil {
			return fmt.Errorf("sync flows: %w", err)
		}
		fc.Physical = append(fc.Physical, flows.PhysBridge{PhysicalNetwork: pb.PhysicalNetwork, Bridge: pb.Bridge, IntOFPort: intPort, PhysOFPort: physPort})
	}
	ports, err := s.c.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("sync flows: %w", err)
	}
	st := flows.State{Networks: s.vlans.Networks()}
	for _, p := range ports {
		if p.Tag == DeadVLAN && p.OFPort > 0 {
			st.DeadPorts = append(st.DeadPorts, p.OFPort)
		}
	}
	plan, err := flows.Plan(fc, st)
	if err != nil {
		return fmt.Errorf("sync flows: %w", err)
	}
	if !force && samePlan(plan, s.applied) {
		return nil
	}
	s.applied = nil
	if _, err := s.app.ApplyPlan(ctx, plan); err != nil {
		return fmt.Errorf("sync flows: %w", err)
	}
	s.applied = plan
	return nil
}

func samePlan(a, b map[string][]flows.Flow) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for br, fa := range a {
		if !slices.Equal(fa, b[br]) {
			return false
		}
	}
	return true
}
