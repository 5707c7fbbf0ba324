// Package ovstest provides an in-memory OVSDB server for unit tests (libovsdb's server and
// in-memory database loaded with Debian's vswitch.ovsschema) and the conformance suite that
// both this fake and a real ovsdb-server must pass with the ovs.Client.
//
// Example:
//
//	func TestConformance(t *testing.T) {
//		srv := ovstest.NewServer(t)
//		ovstest.RunConformance(t, srv.Endpoint(), "netdev")
//	}
package ovstest
