//go:build integration

package vif

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/nova-container-agent/nova-container-agent/internal/netnstest"
)

// With the netdev datapath TCP only works when both veth ends checksum in software.
func TestSoftwareChecksumsOnBothEnds(t *testing.T) {
	path := netnstest.New(t, "nca-vif-csum")
	ctx := context.Background()
	plan, err := NewPlan("c5c5c5c5-aaaa-4bbb-8ccc-000000000001", "fa:16:3e:00:00:01", 1500, 0,
		[]Subnet{{CIDR: netip.MustParsePrefix("192.0.2.0/24"), IP: netip.MustParseAddr("192.0.2.10")}})
	if err != nil {
		t.Fatal(err)
	}
	pl := NewPlumber(WithSoftwareChecksums(true))
	if _, err := pl.Plug(ctx, path, plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pl.Unplug(ctx, plan.PortID) })
	on, err := txChecksum(plan.HostName())
	if err != nil || on {
		t.Fatalf("host end %s: tx checksum offload on=%v err=%v, want off", plan.HostName(), on, err)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := inNetNS(ns, func() error {
		on, err := txChecksum(plan.IfName)
		if err == nil && on {
			t.Errorf("container end %s: tx checksum offload still on", plan.IfName)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A re-plug of an existing port keeps it off (the repair path runs the same step).
	if _, err := pl.Plug(ctx, path, plan); err != nil {
		t.Fatal(err)
	}
	if on, _ := txChecksum(plan.HostName()); on {
		t.Error("re-plug turned offload back on")
	}
}
