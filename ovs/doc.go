// Package ovs manages the Open vSwitch bridges, ports and flows that put instances on Neutron's
// networks, playing the role of neutron's OVS agent.
package ovs
