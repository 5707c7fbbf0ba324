package neutron

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/ovs"
)

// RPC is what the agent needs from an oslo.messaging connection.
type RPC interface {
	Call(ctx context.Context, t rpc.Target, rctx rpc.Context, method string, args map[string]any, timeout time.Duration) (json.RawMessage, error)
	Serve(ctx context.Context, t rpc.Target, h rpc.Handler) error
}

var _ RPC = (*rpc.Conn)(nil)

// Ports lists the instance ports on the integration bridge (neutron's get_vif_port_set): the
// ports whose Interface carries external_ids:iface-id. *ovs.Client satisfies it; it answers from
// its OVSDB monitor cache, so polling it is cheap.
type Ports interface {
	ListPorts(ctx context.Context) ([]ovs.PortRecord, error)
}

var _ Ports = (*ovs.Client)(nil)

// Dataplane realises the agent's decisions in OVS: local VLAN tags, Port.other_config and the
// flows. All calls come from the agent's single device loop.
type Dataplane interface {
	// Start prepares the bridges, recovers the local VLAN map from existing ports and reconciles
	// the flows (neutron's setup_integration_br, setup_physical_bridges and
	// _restore_local_vlan_map).
	Start(ctx context.Context) error
	// BindPort puts the port on its network's local VLAN (allocated on first use, translation
	// flows added) and records the binding in Port.other_config (neutron's port_bound). It
	// returns the local VLAN.
	BindPort(ctx context.Context, p ovs.PortRecord, b ovs.Binding) (int, error)
	// IsolatePort puts the port on the dead VLAN 4095 with an ingress drop flow (port_dead).
	IsolatePort(ctx context.Context, p ovs.PortRecord) error
	// ReleaseNetwork frees the network's local VLAN once its last port left; the translation
	// flows go at the next SyncFlows (reclaim_local_vlan).
	ReleaseNetwork(ctx context.Context, networkID string) error
	// SyncFlows reconciles the flows with the current ports and VLAN map (drops the flows of
	// removed ports and released VLANs).
	SyncFlows(ctx context.Context) error
}

// SwitchDataplane adapts *ovs.Switch to Dataplane.
type SwitchDataplane struct {
	sw *ovs.Switch
}

var _ Dataplane = (*SwitchDataplane)(nil)

// NewSwitchDataplane returns the Dataplane over sw.
func NewSwitchDataplane(sw *ovs.Switch) *SwitchDataplane { return &SwitchDataplane{sw: sw} }

// Start implements Dataplane.
func (d *SwitchDataplane) Start(ctx context.Context) error { return d.sw.Start(ctx) }

func specOf(p ovs.PortRecord) ovs.PortSpec {
	return ovs.PortSpec{Name: p.Name, PortID: p.PortID, MAC: p.MAC, InstanceUUID: p.InstanceUUID}
}

// BindPort implements Dataplane.
func (d *SwitchDataplane) BindPort(ctx context.Context, p ovs.PortRecord, b ovs.Binding) (int, error) {
	if err := d.sw.PlugPort(ctx, specOf(p), &b); err != nil {
		return 0, fmt.Errorf("bind port %s to network %s: %w", p.PortID, b.NetworkID, err)
	}
	v, ok := d.sw.LocalVLANs().Lookup(b.NetworkID)
	if !ok {
		return 0, fmt.Errorf("bind port %s: network %s has no local vlan after plug", p.PortID, b.NetworkID)
	}
	return v, nil
}

// IsolatePort implements Dataplane.
func (d *SwitchDataplane) IsolatePort(ctx context.Context, p ovs.PortRecord) error {
	if err := d.sw.PlugPort(ctx, specOf(p), nil); err != nil {
		return fmt.Errorf("isolate port %s on the dead vlan: %w", p.PortID, err)
	}
	return nil
}

// ReleaseNetwork implements Dataplane.
func (d *SwitchDataplane) ReleaseNetwork(_ context.Context, networkID string) error {
	d.sw.LocalVLANs().Release(networkID)
	return nil
}

// SyncFlows implements Dataplane.
func (d *SwitchDataplane) SyncFlows(ctx context.Context) error { return d.sw.SyncFlows(ctx) }
