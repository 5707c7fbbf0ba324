// Package rpc speaks oslo.messaging's rabbit driver on the wire, so that nova's Python services
// cannot tell this agent from nova-compute.
package rpc
