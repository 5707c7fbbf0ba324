package cloudtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

var _ cloud.Ports = (*Neutron)(nil)

// Neutron is an in-memory neutron for what a compute does with ports: create them on a known
// network, bind and unbind them, find them by device, delete them. Its answers follow
// cloud.Neutron's against the real service (errors wrap cloud.ErrNotFound; deleting a port
// that is gone is not an error); RunPortSuite checks both alike. It binds without agents:
// a port bound to any host gets vif_type "ovs".
type Neutron struct {
	mu       sync.Mutex
	networks map[string]cloud.Network
	subnets  map[string]cloud.Subnet
	ports    map[string]cloud.Port
}

// NewNeutron returns an empty fake.
func NewNeutron() *Neutron {
	return &Neutron{networks: map[string]cloud.Network{}, subnets: map[string]cloud.Subnet{}, ports: map[string]cloud.Port{}}
}

// AddNetwork makes a network (and its subnets) known.
func (n *Neutron) AddNetwork(net cloud.Network, subnets ...cloud.Subnet) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range subnets {
		n.subnets[s.ID] = s
		if !slices.Contains(net.Subnets, s.ID) {
			net.Subnets = append(net.Subnets, s.ID)
		}
	}
	n.networks[net.ID] = net
}

// AddPort stores a port as it is, for a test that starts from a given neutron state.
func (n *Neutron) AddPort(p cloud.Port) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ports[p.ID] = p
}

// PortIDs returns the ids of all ports, sorted.
func (n *Neutron) PortIDs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.ports))
	for id := range n.ports {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (n *Neutron) ListPorts(_ context.Context, f cloud.PortFilter) ([]cloud.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []cloud.Port
	for _, p := range n.ports {
		switch {
		case f.DeviceID != "" && p.DeviceID != f.DeviceID,
			f.TenantID != "" && p.TenantID != f.TenantID,
			f.NetworkID != "" && p.NetworkID != f.NetworkID,
			f.DeviceOwner != "" && p.DeviceOwner != f.DeviceOwner,
			f.HostID != "" && p.BindingHostID != f.HostID,
			len(f.IDs) > 0 && !slices.Contains(f.IDs, p.ID):
			continue
		}
		out = append(out, clonePort(p))
	}
	slices.SortFunc(out, func(a, b cloud.Port) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (n *Neutron) GetPort(_ context.Context, id string) (*cloud.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.ports[id]
	if !ok {
		return nil, fmt.Errorf("get port %s: %w", id, cloud.ErrNotFound)
	}
	p = clonePort(p)
	return &p, nil
}

func (n *Neutron) CreatePort(_ context.Context, c cloud.PortCreate) (*cloud.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	net, ok := n.networks[c.NetworkID]
	if !ok {
		return nil, fmt.Errorf("create port on network %s: %w", c.NetworkID, cloud.ErrNotFound)
	}
	id := uuid.NewString()
	mac := make([]byte, 3)
	_, _ = rand.Read(mac)
	p := cloud.Port{ID: id, NetworkID: net.ID, TenantID: c.TenantID, ProjectID: c.TenantID, DeviceID: c.DeviceID,
		AdminStateUp: c.AdminStateUp, Status: "DOWN", MACAddress: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", mac[0], mac[1], mac[2]),
		FixedIPs: slices.Clone(c.FixedIPs), SecurityGroups: slices.Clone(c.SecurityGroups),
		BindingVIFType: "unbound", BindingVNICType: "normal", MTU: net.MTU, RevisionNumber: 1}
	n.ports[id] = p
	p = clonePort(p)
	return &p, nil
}

func (n *Neutron) UpdatePort(_ context.Context, id string, u cloud.PortUpdate) (*cloud.Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.ports[id]
	if !ok {
		return nil, fmt.Errorf("update port %s: %w", id, cloud.ErrNotFound)
	}
	if u.DeviceID != nil {
		p.DeviceID = *u.DeviceID
	}
	if u.DeviceOwner != nil {
		p.DeviceOwner = *u.DeviceOwner
	}
	switch {
	case u.UnbindHost:
		p.BindingHostID, p.BindingVIFType = "", "unbound"
	case u.BindingHostID != nil:
		p.BindingHostID, p.BindingVIFType = *u.BindingHostID, "ovs"
	}
	if u.BindingProfile != nil {
		p.BindingProfile = u.BindingProfile
	}
	if u.DNSName != nil {
		p.DNSName = *u.DNSName
	}
	p.RevisionNumber++
	n.ports[id] = p
	p = clonePort(p)
	return &p, nil
}

func (n *Neutron) DeletePort(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.ports, id)
	return nil
}

// GetNetwork shows a network added with AddNetwork (fields are not filtered).
func (n *Neutron) GetNetwork(_ context.Context, id string, _ ...string) (*cloud.Network, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	net, ok := n.networks[id]
	if !ok {
		return nil, fmt.Errorf("get network %s: %w", id, cloud.ErrNotFound)
	}
	net.Subnets = slices.Clone(net.Subnets)
	return &net, nil
}

// ListSubnets lists the known subnets among ids.
func (n *Neutron) ListSubnets(_ context.Context, ids []string) ([]cloud.Subnet, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []cloud.Subnet
	for _, id := range ids {
		if s, ok := n.subnets[id]; ok {
			out = append(out, s)
		}
	}
	return out, nil
}

func clonePort(p cloud.Port) cloud.Port {
	p.FixedIPs = slices.Clone(p.FixedIPs)
	p.SecurityGroups = slices.Clone(p.SecurityGroups)
	return p
}
