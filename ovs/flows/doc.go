// Package flows computes, as plain data, the OpenFlow tables neutron's OVS agent (Zed, native
// driver) programs on the integration and physical bridges for VLAN and flat provider networks,
// and applies the difference to a bridge with ovs-ofctl through an injected Runner.
//
// Planning is pure: Plan(cfg, state) returns the desired flows per bridge. Applying is one
// atomic OpenFlow bundle per bridge that adds missing flows and strictly deletes stale ones.
// Every flow we install carries our cookie, the current state is read with a cookie mask
// (dump-flows cookie=C/-1), and deletes carry the same mask, so flows of other owners are never
// touched; replace-flows is never used because it would delete them.
//
// Flows are written in the form OVS prints them back under OpenFlow 1.3, so that a dump compares
// equal to the plan: OVS re-renders mod_vlan_vid:N as set_field:(0x1000|N)->vlan_vid and
// strip_vlan as pop_vlan.
//
// Example:
//
//	plan, err := flows.Plan(flows.Config{IntegrationBridge: "br-int",
//		Physical: []flows.PhysBridge{{PhysicalNetwork: "physnet1", Bridge: "br-phys", IntOFPort: 3, PhysOFPort: 1}}},
//		flows.State{Networks: []flows.Network{{LocalVLAN: 1, NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}}})
//	a := flows.NewApplier(flows.ExecRunner{}, 0x4e43410000000001)
//	err = a.ApplyPlan(ctx, plan)
package flows
