package cloudtest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

// RunPortSuite checks the port behaviour the compute relies on, against the fake or the real
// neutron (network must exist and accept ports from the caller): a port created for an
// instance names it from the start and has no owner until bound; it is found by device; an
// unbind clears device and owner; a port that is gone is a cloud.ErrNotFound to read or update
// and nothing to delete.
func RunPortSuite(t *testing.T, n cloud.Ports, network string) {
	t.Helper()
	ctx := context.Background()
	inst := uuid.NewString()
	p, err := n.CreatePort(ctx, cloud.PortCreate{NetworkID: network, DeviceID: inst, AdminStateUp: true})
	if err != nil {
		t.Fatalf("create port: %v", err)
	}
	t.Cleanup(func() { _ = n.DeletePort(context.Background(), p.ID) })
	if p.ID == "" || p.DeviceID != inst || p.DeviceOwner != "" || p.NetworkID != network || p.MACAddress == "" {
		t.Errorf("created port: id %q device %q owner %q network %q mac %q", p.ID, p.DeviceID, p.DeviceOwner, p.NetworkID, p.MACAddress)
	}

	got, err := n.GetPort(ctx, p.ID)
	if err != nil || got.ID != p.ID || got.DeviceID != inst {
		t.Fatalf("get port: %+v, %v", got, err)
	}
	list, err := n.ListPorts(ctx, cloud.PortFilter{DeviceID: inst})
	if err != nil || len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("list by device %s: %d ports, %v", inst, len(list), err)
	}

	owner := "compute:nova"
	up, err := n.UpdatePort(ctx, p.ID, cloud.PortUpdate{DeviceOwner: &owner})
	if err != nil || up.DeviceOwner != owner || up.DeviceID != inst {
		t.Fatalf("set owner: %+v, %v", up, err)
	}
	if list, err = n.ListPorts(ctx, cloud.PortFilter{DeviceID: inst, DeviceOwner: owner}); err != nil || len(list) != 1 {
		t.Errorf("list by device and owner: %d ports, %v", len(list), err)
	}

	empty := ""
	up, err = n.UpdatePort(ctx, p.ID, cloud.PortUpdate{DeviceID: &empty, DeviceOwner: &empty, UnbindHost: true})
	if err != nil || up.DeviceID != "" || up.DeviceOwner != "" || up.BindingHostID != "" {
		t.Fatalf("unbind: %+v, %v", up, err)
	}
	if list, err = n.ListPorts(ctx, cloud.PortFilter{DeviceID: inst}); err != nil || len(list) != 0 {
		t.Errorf("list by device after unbind: %d ports, %v", len(list), err)
	}

	if err := n.DeletePort(ctx, p.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := n.GetPort(ctx, p.ID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("get deleted port: %v, want ErrNotFound", err)
	}
	if _, err := n.UpdatePort(ctx, p.ID, cloud.PortUpdate{DeviceOwner: &owner}); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("update deleted port: %v, want ErrNotFound", err)
	}
	if err := n.DeletePort(ctx, p.ID); err != nil {
		t.Errorf("delete a port that is gone: %v, want nil", err)
	}
	if _, err := n.CreatePort(ctx, cloud.PortCreate{NetworkID: uuid.NewString(), AdminStateUp: true}); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("create on a network that does not exist: %v, want ErrNotFound", err)
	}
}
