package ovs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/ovs"
	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

func flowSet(m map[uint64][]flows.Flow, cookie uint64) map[string]bool {
	out := map[string]bool{}
	for _, f := range m[cookie] {
		out[f.Key()+" "+f.Actions] = true
	}
	return out
}

func TestSwitchLifecycleInMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := ovstest.NewServer(t)
	srv.EmulateVSwitchd(t)
	c, intBr, physBr := ovstest.Dial(t, srv.Endpoint(), "netdev", "switch-test")
	fake := ovstest.NewFakeOFCtl(intBr, physBr)
	const cookie = 0x4e43410000000001
	sw := ovs.NewSwitch(c, flows.NewApplier(fake, cookie))
	if err := sw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	net1 := &ovs.Binding{NetworkID: "net1", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}
	p := func(id, mac string) ovs.PortSpec {
		return ovs.PortSpec{Name: ovs.TapName(id), PortID: id, MAC: mac, InstanceUUID: "i-" + id}
	}
	a, b, d := p("aaaaaaaa-1111", "fa:16:3e:00:00:0a"), p("bbbbbbbb-2222", "fa:16:3e:00:00:0b"), p("dddddddd-3333", "fa:16:3e:00:00:0d")
	for _, s := range []ovs.PortSpec{a, b} {
		if err := sw.PlugPort(ctx, s, net1); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.PlugPort(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	ports, _ := c.ListPorts(ctx)
	tags := map[string]int{}
	for _, r := range ports {
		tags[r.Name] = r.Tag
	}
	if tags[a.Name] != 1 || tags[b.Name] != 1 || tags[d.Name] != ovs.DeadVLAN {
		t.Errorf("tags = %v", tags)
	}
	intFlows := flowSet(fake.Flows(intBr), cookie)
	physFlows := flowSet(fake.Flows(physBr), cookie)
	var ingress, egress, deadDrop bool
	for f := range intFlows {
		ingress = ingress || (strings.Contains(f, "dl_vlan=101") && strings.Contains(f, "set_field:4097->vlan_vid,goto_table:59"))
		deadDrop = deadDrop || (strings.HasPrefix(f, "0/2/in_port=") && strings.HasSuffix(f, " drop"))
	}
	for f := range physFlows {
		egress = egress || (strings.Contains(f, "dl_vlan=1") && strings.Contains(f, "set_field:4197->vlan_vid,NORMAL"))
	}
	if !ingress || !egress || !deadDrop {
		t.Errorf("missing flows: ingress=%v egress=%v dead=%v\nint=%v\nphys=%v", ingress, egress, deadDrop, intFlows, physFlows)
	}

	// Restart: a fresh Switch recovers vlan 1 for net1 from OVSDB.
	sw2 := ovs.NewSwitch(c, flows.NewApplier(fake, cookie))
	if err := sw2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := sw2.LocalVLANs().Lookup("net1"); !ok || v != 1 {
		t.Errorf("recovered vlan = %d %v", v, ok)
	}
	// Last port of net1 leaves: vlan released, translation flows gone.
	for _, s := range []ovs.PortSpec{a, b, d} {
		if err := sw2.UnplugPort(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := sw2.LocalVLANs().Lookup("net1"); ok {
		t.Error("vlan of net1 not released")
	}
	// Back to br_int's 9 default flows plus the patch port drop: no translation, no dead-port drop.
	if got := flowSet(fake.Flows(intBr), cookie); len(got) != 10 {
		t.Errorf("integration bridge has %d of our flows after teardown, want 10: %v", len(got), got)
	}
	if n := len(flowSet(fake.Flows(physBr), cookie)); n != 2 {
		t.Errorf("phys bridge has %d of our flows after teardown, want the 2 defaults", n)
	}
	if ports, _ := c.ListPorts(ctx); len(ports) != 0 {
		t.Errorf("ports left: %+v", ports)
	}
}
