// Package vif plumbs a Neutron port into a container's network namespace with a veth pair: the
// host end "tap<port id[:11]>" (which the caller then adds to br-int through package ovs) and
// the container end eth0..N carrying the port's MAC, addresses, routes and MTU.
//
// A Plan is pure data built from the port and its subnets (NewPlan); Plumber.Plug applies it
// idempotently: an existing, correct pair is left alone, a stale one is repaired or recreated.
// All netlink work in the container namespace goes through a handle bound to that namespace
// (netlink.NewHandleAt), so no goroutine ever switches namespaces, and every dump call is
// retried when the kernel reports it was interrupted.
//
// Example:
//
//	plan, err := vif.NewPlan(port.ID, port.MAC, 1500, 0, subnets)
//	res, err := vif.NewPlumber().Plug(ctx, "/proc/1234/ns/net", plan)
//	// then ovs.Switch.PlugPort(ctx, ovs.PortSpec{Name: plan.HostName(), ...}, binding)
//	conf := vif.ResolvConf(subnets, nil)
package vif
