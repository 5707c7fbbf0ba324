// Package agent is the nova-compute replacement: it registers this host with nova as an ordinary
// compute service, keeps its Service, ComputeNode and placement records current, and dispatches
// the compute RPC API to the container driver with nova's exact state machine.
package agent
