package ovstest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
)

// FlowTarget is a bridge a flow suite may program, plus a way to install a foreign flow.
type FlowTarget struct {
	Runner flows.Runner
	Bridge string
	// InstallForeign adds a flow with another cookie, as neutron's agent would.
	InstallForeign func(t *testing.T, cookie uint64, f flows.Flow)
}

// RunFlowConformance checks the Applier against a Runner: the FakeOFCtl and real ovs-ofctl on a
// real bridge must both pass.
func RunFlowConformance(t *testing.T, target FlowTarget) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ours, theirs = 0x4e43410000000abc, 0x1234
	a := flows.NewApplier(target.Runner, ours)
	foreign := flows.Flow{Table: 5, Priority: 7, Match: "in_port=1", Actions: "drop"}
	target.InstallForeign(t, theirs, foreign)

	cfg := flows.Config{IntegrationBridge: target.Bridge,
		Physical: []flows.PhysBridge{{PhysicalNetwork: "physnet1", Bridge: "unused-phys", IntOFPort: 1, PhysOFPort: 1}}}
	st := flows.State{Networks: []flows.Network{
		{NetworkID: "a", LocalVLAN: 1, NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}}}
	plan, err := flows.Plan(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	want := plan[target.Bridge]
	ch, err := a.Apply(ctx, target.Bridge, want)
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	if len(ch.Added) != len(want) || len(ch.Deleted) != 0 {
		t.Errorf("first apply changes = +%d -%d, want +%d -0", len(ch.Added), len(ch.Deleted), len(want))
	}
	got, err := a.Dump(ctx, target.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if add, del := flows.Diff(got, want); len(add)+len(del) != 0 {
		t.Errorf("dump after apply differs from plan: add %v del %v", add, del)
	}
	// Idempotent: the dump must read back in exactly the form planned.
	ch, err = a.Apply(ctx, target.Bridge, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Added)+len(ch.Deleted) != 0 {
		t.Errorf("second apply not a no-op: %+v", ch)
	}
	// Switch the network to flat and another VLAN: only the changed flows move.
	st.Networks = []flows.Network{{NetworkID: "b", LocalVLAN: 2, NetworkType: "flat", PhysicalNetwork: "physnet1"}}
	plan2, err := flows.Plan(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ch, err = a.Apply(ctx, target.Bridge, plan2[target.Bridge])
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Added) != 1 || len(ch.Deleted) != 1 {
		t.Errorf("network change = %+v, want one add and one delete", ch)
	}
	if ch, err := a.Apply(ctx, target.Bridge, plan2[target.Bridge]); err != nil || len(ch.Added)+len(ch.Deleted) != 0 {
		t.Errorf("flat plan not idempotent: %+v %v", ch, err)
	}
	if err := a.Clear(ctx, target.Bridge); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Dump(ctx, target.Bridge); err != nil || len(got) != 0 {
		t.Errorf("after Clear our flows = %v (%v)", got, err)
	}
	theirsApplier := flows.NewApplier(target.Runner, theirs)
	left, err := theirsApplier.Dump(ctx, target.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(left, func(f flows.Flow) bool { return f.Key() == foreign.Key() }) {
		t.Errorf("foreign flow %v was touched; foreign cookie flows now %v", foreign, left)
	}
}
