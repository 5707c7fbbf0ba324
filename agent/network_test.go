package agent

import (
	"context"
	"slices"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
)

// A build killed between creating its port and binding it leaves a port that names the
// instance but has no owner and is in no info cache; deleting the instance must remove it,
// along with the cached ports, while a port the user brought is unbound and kept.
func TestDeallocateRemovesPortsTheCacheMissed(t *testing.T) {
	ctx := context.Background()
	const inst, other = "11111111-2222-3333-4444-555555555555", "99999999-2222-3333-4444-555555555555"
	nt := cloudtest.NewNeutron()
	for _, p := range []cloud.Port{
		{ID: "cached", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		{ID: "user", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		{ID: "unbound", DeviceID: inst},
		{ID: "bound-lost", DeviceID: inst, DeviceOwner: "compute:nova", BindingHostID: "h"},
		{ID: "other-inst", DeviceID: other, DeviceOwner: "compute:nova"},
		{ID: "unallocated"},
	} {
		nt.AddPort(p)
	}
	n := &networkAPI{neutron: nt, host: "h"}
	vifs := []VIF{{ID: "cached"}, {ID: "user", PreserveOnDelete: true}}
	if err := n.deallocate(ctx, inst, vifs); err != nil {
		t.Fatal(err)
	}
	if got, want := nt.PortIDs(), []string{"other-inst", "unallocated", "user"}; !slices.Equal(got, want) {
		t.Fatalf("ports left: %v, want %v", got, want)
	}
	if p, err := nt.GetPort(ctx, "user"); err != nil || p.DeviceID != "" || p.DeviceOwner != "" || p.BindingHostID != "" {
		t.Fatalf("the user's port is still attached: %+v, %v", p, err)
	}
	// Deleting again (nova retries a failed delete) finds nothing to do and does not fail.
	if err := n.deallocate(ctx, inst, vifs); err != nil {
		t.Fatalf("second deallocate: %v", err)
	}
}
