package neutron

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Mode says who plays neutron's L2 agent on this host ([container] neutron_agent_mode).
type Mode string

const (
	// ModeFull: this agent is the host's neutron OVS agent (report_state, tags, flows).
	ModeFull Mode = "full"
	// ModeCompat: a real neutron-openvswitch-agent runs beside us and owns tags and flows; the
	// plug path only writes the Interface external_ids it keys on.
	ModeCompat Mode = "compat"
)

// ParseMode reads a [container] neutron_agent_mode value; "" means ModeFull (the default).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", ModeFull:
		return ModeFull, nil
	case ModeCompat:
		return ModeCompat, nil
	default:
		return "", fmt.Errorf("neutron_agent_mode %q: want %q or %q: %w", s, ModeFull, ModeCompat, ErrInvalidConfig)
	}
}

// ManagesDataplane reports whether this agent sets port tags and flows itself (ModeFull); in
// ModeCompat the caller must leave them to neutron's own agent.
func (m Mode) ManagesDataplane() bool { return m != ModeCompat }

// Capabilities is what neutron's agent reports as ovs_capabilities: the Open_vSwitch row's
// datapath_types and iface_types columns. The mechanism driver only looks for vhost-user support
// in it, but the shape must be there.
type Capabilities struct {
	DatapathTypes []string
	IfaceTypes    []string
}

// Config is the L2 agent's configuration: neutron's openvswitch_agent.ini options that reach
// the wire, plus the mode.
type Config struct {
	// Mode selects full or compatibility mode.
	Mode Mode
	// Exchange is the control exchange neutron uses ("neutron").
	Exchange string
	// IntegrationBridge is [ovs] integration_bridge, reported to the server.
	IntegrationBridge string
	// BridgeMappings is [ovs] bridge_mappings (physical network -> bridge); the mechanism
	// driver binds flat/VLAN segments only on these physical networks.
	BridgeMappings map[string]string
	// DatapathType is [ovs] datapath_type; it ends up in the ports' vif_details.
	DatapathType string
	// VhostuserSocketDir is [ovs] vhostuser_socket_dir (reported only).
	VhostuserSocketDir string
	// HypervisorHostname names the hypervisor of every mapped bridge in
	// resource_provider_hypervisors; "" means os.Hostname(), as neutron defaults.
	HypervisorHostname string
	// OVSCapabilities is reported as ovs_capabilities.
	OVSCapabilities Capabilities
	// ReportInterval is [agent] report_interval: the period of report_state calls and their
	// timeout. 0 disables state reports (the server will then consider the agent dead).
	ReportInterval time.Duration
	// PollingInterval is [agent] polling_interval: how often the integration bridge is scanned
	// when nothing asks for an earlier pass.
	PollingInterval time.Duration
	// RPCTimeout is oslo's rpc_response_timeout for the other calls.
	RPCTimeout time.Duration
	// ProcessingStep is [DEFAULT] rpc_resources_processing_step: how many devices go into one
	// details or update_device_list call.
	ProcessingStep int
}

// DefaultConfig returns neutron's defaults: full mode, exchange "neutron", br-int, datapath
// "system", report every 30 s, poll every 2 s, 60 s RPC timeout, 20 devices per call.
func DefaultConfig() Config {
	return Config{
		Mode:               ModeFull,
		Exchange:           "neutron",
		IntegrationBridge:  "br-int",
		BridgeMappings:     map[string]string{},
		DatapathType:       "system",
		VhostuserSocketDir: "/var/run/openvswitch",
		OVSCapabilities: Capabilities{
			DatapathTypes: []string{"netdev", "system"},
			IfaceTypes:    []string{"internal", "patch", "system", "tap"},
		},
		ReportInterval:  30 * time.Second,
		PollingInterval: 2 * time.Second,
		RPCTimeout:      60 * time.Second,
		ProcessingStep:  20,
	}
}

// Validate checks the configuration before anything runs.
func (c Config) Validate() error {
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Mode == ModeCompat {
		return nil
	}
	var errs []string
	if c.Exchange == "" {
		errs = append(errs, "empty exchange")
	}
	if c.IntegrationBridge == "" {
		errs = append(errs, "empty integration_bridge")
	}
	for _, pn := range slices.Sorted(maps.Keys(c.BridgeMappings)) {
		if pn == "" || c.BridgeMappings[pn] == "" {
			errs = append(errs, fmt.Sprintf("bridge_mappings entry %q:%q", pn, c.BridgeMappings[pn]))
		}
	}
	if c.DatapathType == "" {
		errs = append(errs, "empty datapath_type")
	}
	if c.ReportInterval < 0 {
		errs = append(errs, "negative report_interval")
	}
	if c.PollingInterval <= 0 {
		errs = append(errs, "polling_interval must be positive")
	}
	if c.RPCTimeout <= 0 {
		errs = append(errs, "rpc timeout must be positive")
	}
	if c.ProcessingStep <= 0 {
		errs = append(errs, "rpc_resources_processing_step must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("neutron agent config: %s: %w", strings.Join(errs, "; "), ErrInvalidConfig)
	}
	return nil
}

// hypervisor returns the name reported for every mapped bridge.
func (c Config) hypervisor() string {
	if c.HypervisorHostname != "" {
		return c.HypervisorHostname
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "localhost"
}
