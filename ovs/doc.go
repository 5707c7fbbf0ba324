// Package ovs manages the Open vSwitch bridges, ports and flows that put instances on Neutron's
// networks, playing the role of neutron's OVS agent.
//
// The package is split so that plumbing and flow programming can be used separately:
//
//   - Client (this package) talks OVSDB through libovsdb: it ensures the integration bridge, one
//     physical bridge per bridge_mappings entry and their int-/phy- patch pair, adds and removes
//     instance ports with os-vif's Interface external_ids and neutron's Port tag/other_config,
//     and lists the ports this agent owns. Every mutation is one OVSDB transaction.
//   - LocalVLANs allocates neutron's per-network local VLAN and recovers it from the port
//     records after a restart.
//   - Package flows computes the desired OpenFlow tables as plain data and applies the
//     difference with ovs-ofctl bundles, touching only flows that carry our cookie.
//   - Switch ties the three together for the full agent role. In "compatibility mode", when
//     neutron's own OVS agent owns the flows and the tags, callers use only Client.AddPort and
//     Client.DeletePort.
//
// Example:
//
//	c, err := ovs.Dial(ctx, "unix:/var/run/openvswitch/db.sock",
//		ovs.WithIntegrationBridge("br-int"),
//		ovs.WithBridgeMapping("physnet1", "br-phys"),
//		ovs.WithDatapathType("netdev"))
//	if err != nil { ... }
//	defer c.Close()
//	err = c.EnsureBridges(ctx)
//	err = c.AddPort(ctx, ovs.PortSpec{Name: "tap6e6f7a5c-11", PortID: portID, MAC: mac, InstanceUUID: uuid})
package ovs
