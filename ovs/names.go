package ovs

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// Naming constants from neutron_lib (plugins/ml2/ovs_constants.py, plugins/utils.py).
const (
	PeerIntegrationPrefix = "int-"
	PeerPhysicalPrefix    = "phy-"
	// NonexistentPeer is the patch peer neutron sets before its drop flows are in place.
	NonexistentPeer = "nonexistent-peer"
	// MaxIfNameLen is the Linux IFNAMSIZ-1 limit that OVS port names share.
	MaxIfNameLen     = 15
	interfaceHashLen = 6
)

// InterfaceName reproduces neutron_lib's get_interface_name: prefix+name if it fits in 15
// characters, else prefix + a truncated name + the first 6 hex digits of sha1(name). Matching
// neutron exactly matters because neutron's agent, in compatibility mode, looks for these
// names on the same bridges.
func InterfaceName(name, prefix string) string {
	if len(prefix)+len(name) <= MaxIfNameLen {
		return prefix + name
	}
	sum := sha1.Sum([]byte(name))
	keep := MaxIfNameLen - len(prefix) - interfaceHashLen
	return prefix + name[:keep] + hex.EncodeToString(sum[:])[:interfaceHashLen]
}

// TapName is the host-side device name nova and os-vif give a port: "tap" + port_id[:11].
func TapName(portID string) string {
	id := portID
	if len(id) > 11 {
		id = id[:11]
	}
	return "tap" + id
}

func validIfName(name string) error {
	if name == "" {
		return fmt.Errorf("empty interface name: %w", ErrInvalid)
	}
	if len(name) > MaxIfNameLen {
		return fmt.Errorf("interface name %q longer than %d: %w", name, MaxIfNameLen, ErrInvalid)
	}
	if strings.ContainsAny(name, "/ \t\n:") || name == "." || name == ".." {
		return fmt.Errorf("interface name %q has forbidden characters: %w", name, ErrInvalid)
	}
	return nil
}
