package ovs

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
)

// LocalVLANs is neutron's LocalVlanManager: one local VLAN (1..4094) per Neutron network on
// this host, recovered from the ports' tag and other_config after a restart. Safe for
// concurrent use.
type LocalVLANs struct {
	mu    sync.Mutex
	byNet map[string]localVLAN
	used  map[int]string // vlan -> network id
}

type localVLAN struct {
	vlan    int
	binding Binding
}

// NewLocalVLANs returns an empty allocator.
func NewLocalVLANs() *LocalVLANs {
	return &LocalVLANs{byNet: map[string]localVLAN{}, used: map[int]string{}}
}

// Restore re-learns mappings from port records (neutron's _restore_local_vlan_map). Ports
// without a binding or with a tag outside 1..4094 are skipped; a port contradicting an earlier
// one (same network, other VLAN, or VLAN taken by another network) is reported in the joined
// error and skipped, so one bad row cannot lose the others.
func (l *LocalVLANs) Restore(ports []PortRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, p := range ports {
		if p.Binding == nil || p.Tag < 1 || p.Tag > 4094 {
			continue
		}
		nid := p.Binding.NetworkID
		if cur, ok := l.byNet[nid]; ok {
			if cur.vlan != p.Tag {
				errs = append(errs, fmt.Errorf("port %s: network %s on vlan %d, already on %d: %w", p.Name, nid, p.Tag, cur.vlan, ErrConflict))
			}
			continue
		}
		if other, ok := l.used[p.Tag]; ok {
			errs = append(errs, fmt.Errorf("port %s: vlan %d of network %s already used by %s: %w", p.Name, p.Tag, nid, other, ErrConflict))
			continue
		}
		l.byNet[nid] = localVLAN{p.Tag, *p.Binding}
		l.used[p.Tag] = nid
	}
	return errors.Join(errs...)
}

// Acquire returns the network's local VLAN, allocating the lowest free one if it has none.
func (l *LocalVLANs) Acquire(b Binding) (int, error) {
	if err := b.Validate(); err != nil {
		return 0, fmt.Errorf("acquire local vlan: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.byNet[b.NetworkID]; ok {
		if cur.binding != b {
			return 0, fmt.Errorf("acquire local vlan for network %s: segment %+v differs from recorded %+v: %w", b.NetworkID, b, cur.binding, ErrConflict)
		}
		return cur.vlan, nil
	}
	for v := 1; v <= 4094; v++ {
		if _, taken := l.used[v]; !taken {
			l.byNet[b.NetworkID] = localVLAN{v, b}
			l.used[v] = b.NetworkID
			return v, nil
		}
	}
	return 0, fmt.Errorf("acquire local vlan for network %s: all 4094 in use: %w", b.NetworkID, ErrExhausted)
}

// Lookup returns the network's local VLAN.
func (l *LocalVLANs) Lookup(networkID string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.byNet[networkID]
	return cur.vlan, ok
}

// Release frees the network's local VLAN (neutron's reclaim_local_vlan).
func (l *LocalVLANs) Release(networkID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.byNet[networkID]; ok {
		delete(l.used, cur.vlan)
		delete(l.byNet, networkID)
	}
}

// Networks returns the mappings as flow-plan input, sorted by local VLAN.
func (l *LocalVLANs) Networks() []flows.Network {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []flows.Network
	for _, v := range slices.Sorted(maps.Keys(l.used)) {
		e := l.byNet[l.used[v]]
		out = append(out, flows.Network{NetworkID: e.binding.NetworkID, LocalVLAN: v, NetworkType: e.binding.NetworkType,
			PhysicalNetwork: e.binding.PhysicalNetwork, SegmentationID: e.binding.SegmentationID})
	}
	return out
}
