package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

// portTable is a neutron holding ports and nothing else: enough to see what deallocate
// deletes, unbinds and keeps.
type portTable struct {
	mu    sync.Mutex
	ports map[string]cloud.Port
	next  int
}

func (t *portTable) ListPorts(_ context.Context, f cloud.PortFilter) ([]cloud.Port, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []cloud.Port
	for _, p := range t.ports {
		if f.DeviceID == "" || p.DeviceID == f.DeviceID {
			out = append(out, p)
		}
	}
	return out, nil
}

func (t *portTable) GetPort(_ context.Context, id string) (*cloud.Port, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.ports[id]
	if !ok {
		return nil, cloud.ErrNotFound
	}
	return &p, nil
}

func (t *portTable) CreatePort(_ context.Context, c cloud.PortCreate) (*cloud.Port, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	p := cloud.Port{ID: fmt.Sprintf("port-%d", t.next), NetworkID: c.NetworkID, DeviceID: c.DeviceID}
	t.ports[p.ID] = p
	return &p, nil
}

func (t *portTable) UpdatePort(_ context.Context, id string, u cloud.PortUpdate) (*cloud.Port, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.ports[id]
	if !ok {
		return nil, cloud.ErrNotFound
	}
	if u.DeviceID != nil {
		p.DeviceID = *u.DeviceID
	}
	if u.DeviceOwner != nil {
		p.DeviceOwner = *u.DeviceOwner
	}
	if u.BindingHostID != nil {
		p.BindingHostID = *u.BindingHostID
	}
	if u.UnbindHost {
		p.BindingHostID = ""
	}
	t.ports[id] = p
	return &p, nil
}

func (t *portTable) DeletePort(_ context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ports[id]; !ok {
		return cloud.ErrNotFound
	}
	delete(t.ports, id)
	return nil
}

func (t *portTable) GetNetwork(context.Context, string, ...string) (*cloud.Network, error) {
	return nil, cloud.ErrNotFound
}

func (t *portTable) ListSubnets(context.Context, []string) ([]cloud.Subnet, error) { return nil, nil }

func (t *portTable) ids() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for id := range t.ports {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// A build killed between creating its port and binding it leaves a port that names the
// instance but has no owner and is in no info cache; deleting the instance must remove it,
// along with the cached ports, while a port the user brought is unbound and kept.
func TestDeallocateRemovesPortsTheCacheMissed(t *testing.T) {
	ctx := context.Background()
	const inst, other = "11111111-2222-3333-4444-555555555555", "99999999-2222-3333-4444-555555555555"
	nt := &portTable{ports: map[string]cloud.Port{
		"cached":      {ID: "cached", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		"user":        {ID: "user", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		"unbound":     {ID: "unbound", DeviceID: inst},
		"bound-lost":  {ID: "bound-lost", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		"other-inst":  {ID: "other-inst", DeviceID: other, DeviceOwner: "compute:nova"},
		"unallocated": {ID: "unallocated"},
	}}
	n := &networkAPI{neutron: nt, host: "h"}
	vifs := []VIF{{ID: "cached"}, {ID: "user", PreserveOnDelete: true}}
	if err := n.deallocate(ctx, inst, vifs); err != nil {
		t.Fatal(err)
	}
	if got, want := nt.ids(), []string{"other-inst", "unallocated", "user"}; !slices.Equal(got, want) {
		t.Fatalf("ports left: %v, want %v", got, want)
	}
	if p := nt.ports["user"]; p.DeviceID != "" || p.DeviceOwner != "" || p.BindingHostID != "" {
		t.Fatalf("the user's port is still attached: %+v", p)
	}
	// Deleting again (nova retries a failed delete) finds nothing to do and does not fail.
	if err := n.deallocate(ctx, inst, vifs); err != nil {
		t.Fatalf("second deallocate: %v", err)
	}
}
