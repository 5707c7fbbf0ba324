package ovs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Config is the OVS part of the agent's configuration, mirroring neutron's [ovs] options.
type Config struct {
	// IntegrationBridge is neutron's [ovs] integration_bridge ("br-int").
	IntegrationBridge string
	// BridgeMappings is neutron's [ovs] bridge_mappings: physical network name -> bridge.
	BridgeMappings map[string]string
	// DatapathType is neutron's [ovs] datapath_type ("system" or "netdev").
	DatapathType string
	// Owner is the value of the OwnerKey external_id stamped on every row this agent creates,
	// so that two agents sharing one ovsdb-server each list only their own ports.
	Owner string
}

// Option adjusts a Config.
type Option func(*Config)

// WithIntegrationBridge sets the integration bridge name.
func WithIntegrationBridge(name string) Option { return func(c *Config) { c.IntegrationBridge = name } }

// WithBridgeMapping adds one physical network -> bridge mapping.
func WithBridgeMapping(physnet, bridge string) Option {
	return func(c *Config) {
		if c.BridgeMappings == nil {
			c.BridgeMappings = map[string]string{}
		}
		c.BridgeMappings[physnet] = bridge
	}
}

// WithBridgeMappings replaces all physical network -> bridge mappings.
func WithBridgeMappings(m map[string]string) Option {
	return func(c *Config) { c.BridgeMappings = maps.Clone(m) }
}

// WithDatapathType sets the datapath type of the bridges the agent creates.
func WithDatapathType(dt string) Option { return func(c *Config) { c.DatapathType = dt } }

// WithOwner sets the owner value stamped on our rows (default DefaultOwner).
func WithOwner(owner string) Option { return func(c *Config) { c.Owner = owner } }

// DefaultOwner is the owner value used when WithOwner is not given.
const DefaultOwner = "nova-container-agent"

// NewConfig applies opts over neutron's defaults and validates the result.
func NewConfig(opts ...Option) (Config, error) {
	c := Config{IntegrationBridge: "br-int", DatapathType: "system", Owner: DefaultOwner}
	for _, o := range opts {
		o(&c)
	}
	if c.BridgeMappings == nil {
		c.BridgeMappings = map[string]string{}
	}
	return c, c.Validate()
}

// Validate checks names before anything touches OVSDB.
func (c Config) Validate() error {
	if err := validIfName(c.IntegrationBridge); err != nil {
		return fmt.Errorf("integration bridge: %w", err)
	}
	if c.Owner == "" {
		return fmt.Errorf("owner must not be empty: %w", ErrInvalid)
	}
	switch c.DatapathType {
	case "system", "netdev":
	default:
		return fmt.Errorf("datapath type %q (want system or netdev): %w", c.DatapathType, ErrInvalid)
	}
	seen := map[string]string{}
	for _, physnet := range slices.Sorted(maps.Keys(c.BridgeMappings)) {
		br := c.BridgeMappings[physnet]
		if physnet == "" {
			return fmt.Errorf("bridge mapping with empty physical network: %w", ErrInvalid)
		}
		if err := validIfName(br); err != nil {
			return fmt.Errorf("bridge of physical network %s: %w", physnet, err)
		}
		if br == c.IntegrationBridge {
			return fmt.Errorf("physical network %s mapped to the integration bridge %s: %w", physnet, br, ErrInvalid)
		}
		if other, ok := seen[br]; ok {
			return fmt.Errorf("bridge %s mapped by both %s and %s: %w", br, other, physnet, ErrInvalid)
		}
		seen[br] = physnet
	}
	return nil
}

// PhysicalBridges returns the mapped bridges sorted by physical network name.
func (c Config) PhysicalBridges() []PhysicalBridge {
	out := make([]PhysicalBridge, 0, len(c.BridgeMappings))
	for _, physnet := range slices.Sorted(maps.Keys(c.BridgeMappings)) {
		br := c.BridgeMappings[physnet]
		out = append(out, PhysicalBridge{
			PhysicalNetwork: physnet,
			Bridge:          br,
			IntPatch:        InterfaceName(br, PeerIntegrationPrefix),
			PhysPatch:       InterfaceName(br, PeerPhysicalPrefix),
		})
	}
	return out
}

// PhysicalBridge is one bridge_mappings entry with the names of its patch pair.
type PhysicalBridge struct {
	PhysicalNetwork string
	Bridge          string
	// IntPatch is the patch port on the integration bridge ("int-br-phys").
	IntPatch string
	// PhysPatch is the patch port on the physical bridge ("phy-br-phys").
	PhysPatch string
}

// ParseBridgeMappings parses neutron's "physnet1:br-phys,physnet2:br-two" syntax.
func ParseBridgeMappings(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		physnet, br, ok := strings.Cut(item, ":")
		physnet, br = strings.TrimSpace(physnet), strings.TrimSpace(br)
		if !ok || physnet == "" || br == "" {
			return nil, fmt.Errorf("bridge mapping %q (want physnet:bridge): %w", item, ErrInvalid)
		}
		if _, dup := out[physnet]; dup {
			return nil, fmt.Errorf("physical network %s mapped twice: %w", physnet, ErrInvalid)
		}
		out[physnet] = br
	}
	return out, nil
}
