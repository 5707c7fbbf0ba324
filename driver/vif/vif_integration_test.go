//go:build integration

package vif_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nova-container-agent/nova-container-agent/driver/vif"
	"github.com/nova-container-agent/nova-container-agent/internal/netnstest"
)

func newNetns(t *testing.T, name string) string { return netnstest.New(t, name) }

func TestPlugUnplugRealNetns(t *testing.T) {
	ctx := context.Background()
	path := newNetns(t, "nca-test-vif")
	subnets := []vif.Subnet{
		{CIDR: netip.MustParsePrefix("10.77.0.0/24"), IP: netip.MustParseAddr("10.77.0.5"), Gateway: netip.MustParseAddr("10.77.0.1"),
			HostRoutes: []vif.Route{{Dst: netip.MustParsePrefix("10.88.0.0/16"), Gateway: netip.MustParseAddr("10.77.0.254")}}},
		{CIDR: netip.MustParsePrefix("fd00:77::/64"), IP: netip.MustParseAddr("fd00:77::5"), Gateway: netip.MustParseAddr("fd00:77::1")},
	}
	plan, err := vif.NewPlan("c0ffee00-1234-4567-89ab-cdef01234567", "fa:16:3e:77:00:05", 1400, 0, subnets)
	if err != nil {
		t.Fatal(err)
	}
	pl := vif.NewPlumber()
	t.Cleanup(func() { _ = pl.Unplug(ctx, plan.PortID) })
	if out, err := pl.Plug(ctx, path, plan); err != nil || out != vif.Created {
		t.Fatalf("first plug = %v, %v", out, err)
	}
	if out, err := pl.Plug(ctx, path, plan); err != nil || out != vif.Unchanged {
		t.Fatalf("re-plug = %v, %v; want unchanged", out, err)
	}

	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("eth0 in netns: %v", err)
	}
	if l.Attrs().HardwareAddr.String() != plan.MAC || l.Attrs().MTU != 1400 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0 attrs = mac %s mtu %d flags %v", l.Attrs().HardwareAddr, l.Attrs().MTU, l.Attrs().Flags)
	}
	host, err := netlink.LinkByName(plan.HostName())
	if err != nil || host.Attrs().MTU != 1400 {
		t.Fatalf("host end %s: %v", plan.HostName(), err)
	}
	routes, err := h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil { // netlink 1.3 reports defaults as 0.0.0.0/0 and ::/0, older as nil
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				dst = r.Dst.String()
			}
		}
		if r.Gw != nil {
			found[dst+" via "+r.Gw.String()] = true
		}
	}
	for _, want := range []string{"default via 10.77.0.1", "10.88.0.0/16 via 10.77.0.254", "default via fd00:77::1"} {
		if !found[want] {
			t.Errorf("route %q missing; have %v", want, found)
		}
	}

	// Stale: someone changed the MAC and removed an address -> repaired in place.
	bad, _ := net.ParseMAC("fa:16:3e:00:00:99")
	if err := h.LinkSetHardwareAddr(l, bad); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.77.0.5"), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if out, err := pl.Plug(ctx, path, plan); err != nil || out != vif.Repaired {
		t.Fatalf("repair plug = %v, %v", out, err)
	}
	if out, _ := pl.Plug(ctx, path, plan); out != vif.Unchanged {
		t.Errorf("after repair = %v, want unchanged", out)
	}
	// Stale: the container end was renamed -> recreated.
	l, _ = h.LinkByName("eth0")
	_ = h.LinkSetDown(l)
	if err := h.LinkSetName(l, "old0"); err != nil {
		t.Fatal(err)
	}
	if out, err := pl.Plug(ctx, path, plan); err != nil || out != vif.Recreated {
		t.Fatalf("recreate plug = %v, %v", out, err)
	}
	if _, err := h.LinkByName("old0"); err == nil {
		t.Error("stale old0 survived the recreate")
	}

	if err := pl.Unplug(ctx, plan.PortID); err != nil {
		t.Fatal(err)
	}
	if err := pl.Unplug(ctx, plan.PortID); err != nil {
		t.Fatalf("second unplug: %v", err)
	}
	if _, err := netlink.LinkByName(plan.HostName()); err == nil {
		t.Error("host end still present")
	}
	if _, err := h.LinkByName("eth0"); err == nil {
		t.Error("eth0 still present in netns")
	}
}
