// Package ovsdb holds the hand-written libovsdb model structs for the subset of the
// Open_vSwitch database (vswitch.ovsschema) that the agent reads and writes: the root
// Open_vSwitch row, Bridge, Port and Interface.
//
// Only the columns the agent needs are mapped; libovsdb validates them against the schema the
// server announces when the client connects, so a column typo fails at Connect, not later.
//
// Example:
//
//	dbModel, err := ovsdb.Model()
//	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint("unix:/var/run/openvswitch/db.sock"))
package ovsdb
