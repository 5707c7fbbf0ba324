//go:build integration

package vif_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nova-container-agent/nova-container-agent/driver/vif"
)

// A machine that still maps the address to a deleted instance's MAC learns the new one from
// the announcement: here the host end of the veth plays that machine, with a stale entry.
func TestAnnounceUpdatesAStaleNeighbour(t *testing.T) {
	ctx := context.Background()
	path := newNetns(t, "nca-test-garp")
	plan, err := vif.NewPlan("c0ffee00-9999-4567-89ab-cdef01234567", "fa:16:3e:79:00:05", 1500, 0, []vif.Subnet{
		{CIDR: netip.MustParsePrefix("10.79.0.0/24"), IP: netip.MustParseAddr("10.79.0.5")}})
	if err != nil {
		t.Fatal(err)
	}
	pl := vif.NewPlumber()
	t.Cleanup(func() { _ = pl.Unplug(ctx, plan.PortID) })
	if _, err := pl.Plug(ctx, path, plan); err != nil {
		t.Fatalf("plug: %v", err)
	}
	host, err := netlink.LinkByName(plan.HostName())
	if err != nil {
		t.Fatal(err)
	}
	old, _ := net.ParseMAC("fa:16:3e:79:00:99")
	ip := net.ParseIP("10.79.0.5")
	if err := netlink.NeighSet(&netlink.Neigh{LinkIndex: host.Attrs().Index, Family: netlink.FAMILY_V4, IP: ip,
		HardwareAddr: old, State: netlink.NUD_STALE}); err != nil {
		t.Fatalf("seed stale neighbour: %v", err)
	}
	lookup := func() string {
		ns, err := netlink.NeighList(host.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if n.IP.Equal(ip) {
				return n.HardwareAddr.String()
			}
		}
		return ""
	}
	if got := lookup(); got != old.String() {
		t.Fatalf("seeded entry reads %q", got)
	}
	// A veth just created drops what it is given until the kernel has activated its queue, so
	// the agent announces a few times, as here.
	for i := 0; i < 10 && lookup() != plan.MAC; i++ {
		if err := pl.Announce(ctx, path, plan); err != nil {
			t.Fatalf("announce: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := lookup(); got != plan.MAC {
		t.Fatalf("neighbour entry after the announcement: %q, want %s", got, plan.MAC)
	}
}
