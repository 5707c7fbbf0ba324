package neutron

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// Wire names of neutron's agent RPC (neutron_lib/agent/topics.py, neutron/agent/rpc.py).
const (
	// Binary is the agent's binary name (neutron_lib AGENT_PROCESS_OVS).
	Binary = "neutron-openvswitch-agent"
	// AgentType is what the ML2 openvswitch mechanism driver looks for.
	AgentType = "Open vSwitch agent"

	topicReports = "q-reports-plugin"
	topicPlugin  = "q-plugin"

	topicPortUpdate    = "q-agent-notifier-port-update"
	topicPortDelete    = "q-agent-notifier-port-delete"
	topicNetworkUpdate = "q-agent-notifier-network-update"

	// versionState is PluginReportStateAPI's target version.
	versionState = "1.2"
	// versionDetails is what PluginApi.get_devices_details_list_and_failed_devices prepares.
	versionDetails = "1.5"
	// versionDeviceList is PluginApi.update_device_list's version (as recorded).
	versionDeviceList = "1.9"
	// versionAgent is the OVS agent endpoint's Target version (OVSNeutronAgent.target).
	versionAgent = "1.7"
)

// Agent-state replies (neutron_lib/agent/constants.py).
const (
	stateNew     = "new"
	stateAlive   = "alive"
	stateRevived = "revived"
)

// resourceVersions is neutron 21.0.0's LOCAL_RESOURCE_VERSIONS as the Zed agent reports it on
// its first report_state (copied from the recorded startup): it tells the server which object
// versions to push to this agent's host.
var resourceVersions = map[string]string{
	"AddressGroup": "1.2", "Agent": "1.1", "ConntrackHelper": "1.0", "LocalIPAssociation": "1.0",
	"Log": "1.0", "NDPProxy": "1.0", "Network": "1.1", "Port": "1.7", "PortForwarding": "1.3",
	"QosPolicy": "1.10", "SecurityGroup": "1.5", "SecurityGroupRule": "1.2", "SubPort": "1.0",
	"Subnet": "1.1", "Trunk": "1.1",
}

// newAdminContext is neutron's get_admin_context_without_session() as the agent sends it: the
// oslo.context keys plus tenant_id/tenant_name, a str(datetime) timestamp, one request id for
// the agent's lifetime.
func newAdminContext(now time.Time) rpc.Context {
	return rpc.Context{
		"auth_token": nil, "domain": nil, "global_request_id": nil, "is_admin": true,
		"is_admin_project": true, "project": nil, "project_domain": nil, "project_id": nil,
		"project_name": nil, "read_only": false, "request_id": rpc.NewRequestID(),
		"resource_uuid": nil, "roles": []any{}, "show_deleted": false, "system_scope": nil,
		"tenant_id": nil, "tenant_name": nil,
		"timestamp": now.UTC().Format(rpc.NeutronTimestampLayout), "user": nil,
		"user_domain": nil, "user_id": nil, "user_identity": "- - - - -", "user_name": nil,
	}
}

// inventoryDefaults is neutron's parse_rp_inventory_defaults({}); allocation_ratio is a float
// in Python, so it is written "1.0".
func inventoryDefaults() map[string]any {
	return map[string]any{"allocation_ratio": json.Number("1.0"), "min_unit": 1, "reserved": 0, "step_size": 1}
}

// stateReport is one report_state's variable part.
type stateReport struct {
	devices          int
	startFlag        bool
	resourceVersions bool
}

// agentState builds the agent_state dict of OVSNeutronAgent.__init__ and _report_state, field
// by field as recorded from neutron-openvswitch-agent 21.0.0 (no tunnels, no DVR, no
// extensions, noop firewall).
func agentState(cfg Config, host string, r stateReport) map[string]any {
	hv := cfg.hypervisor()
	hypervisors := map[string]any{}
	mappings := map[string]any{}
	for _, pn := range slices.Sorted(maps.Keys(cfg.BridgeMappings)) {
		mappings[pn] = cfg.BridgeMappings[pn]
		hypervisors[cfg.BridgeMappings[pn]] = hv
	}
	st := map[string]any{
		"binary":     Binary,
		"host":       host,
		"topic":      "N/A",
		"agent_type": AgentType,
		"configurations": map[string]any{
			"bridge_mappings":                                        mappings,
			"resource_provider_bandwidths":                           map[string]any{},
			"resource_provider_inventory_defaults":                   inventoryDefaults(),
			"resource_provider_packet_processing_without_direction":  map[string]any{},
			"resource_provider_packet_processing_with_direction":     map[string]any{},
			"resource_provider_packet_processing_inventory_defaults": inventoryDefaults(),
			"resource_provider_hypervisors":                          hypervisors,
			"integration_bridge":                                     cfg.IntegrationBridge,
			"tunnel_types":                                           []any{},
			"tunneling_ip":                                           nil,
			"l2_population":                                          false,
			"arp_responder_enabled":                                  false,
			"enable_distributed_routing":                             false,
			"log_agent_heartbeats":                                   false,
			"extensions":                                             []any{},
			"datapath_type":                                          cfg.DatapathType,
			"ovs_capabilities": map[string]any{
				"datapath_types": nonNil(cfg.OVSCapabilities.DatapathTypes),
				"iface_types":    nonNil(cfg.OVSCapabilities.IfaceTypes),
			},
			"vhostuser_socket_dir": cfg.VhostuserSocketDir,
			"ovs_hybrid_plug":      false,
			"baremetal_smartnic":   false,
			"devices":              r.devices,
			"in_distributed_mode":  false,
		},
		"uuid": uuid.NewString(),
	}
	if r.startFlag {
		st["start_flag"] = true
	}
	if r.resourceVersions {
		st["resource_versions"] = maps.Clone(resourceVersions)
	}
	return st
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// server is the client side of neutron-server's agent RPC.
type server struct {
	conn     RPC
	exchange string
	host     string
	agentID  string
	rctx     rpc.Context
	timeout  time.Duration
}

func (s *server) target(topic, version string) rpc.Target {
	return rpc.Target{Exchange: s.exchange, Topic: topic, Version: version}
}

// hasAliveServer is PluginReportStateAPI.has_alive_neutron_server.
func (s *server) hasAliveServer(ctx context.Context) error {
	if _, err := s.conn.Call(ctx, s.target(topicReports, versionState), s.rctx, "has_alive_neutron_server", map[string]any{}, s.timeout); err != nil {
		return fmt.Errorf("has_alive_neutron_server: %w", err)
	}
	return nil
}

// reportState is PluginReportStateAPI.report_state(use_call=True): the call times out after
// report_interval, like Python's prepare(timeout=report_interval).
func (s *server) reportState(ctx context.Context, state map[string]any, now time.Time, timeout time.Duration) (string, error) {
	args := map[string]any{
		"agent_state": map[string]any{"agent_state": state},
		"time":        rpc.FormatTimestamp(now),
	}
	raw, err := s.conn.Call(ctx, s.target(topicReports, versionState), s.rctx, "report_state", args, timeout)
	if err != nil {
		return "", fmt.Errorf("report_state: %w", err)
	}
	var status string
	if err := json.Unmarshal(raw, &status); err != nil {
		// The server's answer only matters for "revived"; anything else is logged by the caller.
		return "", fmt.Errorf("report_state reply %s: %w", truncate(raw), ErrBadMessage)
	}
	return status, nil
}

// deviceDetails is one entry of get_devices_details_list_and_failed_devices' "devices" list
// (ml2 RpcCallbacks._get_device_details). Only "device" is always present.
type deviceDetails struct {
	Device          string `json:"device"`
	PortID          string `json:"port_id"`
	NetworkID       string `json:"network_id"`
	MACAddress      string `json:"mac_address"`
	AdminStateUp    *bool  `json:"admin_state_up"`
	NetworkType     string `json:"network_type"`
	SegmentationID  *int   `json:"segmentation_id"`
	PhysicalNetwork string `json:"physical_network"`
	MTU             *int   `json:"mtu"`
	DeviceOwner     string `json:"device_owner"`
	// NoActiveBinding is set for a compute port whose active binding is on another host.
	NoActiveBinding bool `json:"no_active_binding"`
}

type detailsReply struct {
	Devices       []deviceDetails `json:"devices"`
	FailedDevices []string        `json:"failed_devices"`
}

// devicesDetails is PluginApi.get_devices_details_list_and_failed_devices. As a side effect the
// server moves each bound port to BUILD (or DOWN when admin_state_up is false).
func (s *server) devicesDetails(ctx context.Context, devices []string) (detailsReply, error) {
	args := map[string]any{"devices": devices, "agent_id": s.agentID, "host": s.host}
	raw, err := s.conn.Call(ctx, s.target(topicPlugin, versionDetails), s.rctx, "get_devices_details_list_and_failed_devices", args, s.timeout)
	if err != nil {
		return detailsReply{}, fmt.Errorf("get_devices_details_list_and_failed_devices for %d devices: %w", len(devices), err)
	}
	var r detailsReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return detailsReply{}, fmt.Errorf("get_devices_details_list_and_failed_devices reply %s: %v: %w", truncate(raw), err, ErrBadMessage)
	}
	return r, nil
}

type deviceListReply struct {
	DevicesUp         []string          `json:"devices_up"`
	FailedDevicesUp   []string          `json:"failed_devices_up"`
	DevicesDown       []json.RawMessage `json:"devices_down"`
	FailedDevicesDown []string          `json:"failed_devices_down"`
}

// updateDeviceList is PluginApi.update_device_list: devices up make the server complete the L2
// provisioning block (port ACTIVE, network-vif-plugged); devices down set the port DOWN.
func (s *server) updateDeviceList(ctx context.Context, up, down []string, refreshTunnels bool) (deviceListReply, error) {
	args := map[string]any{"devices_up": nonNil(up), "devices_down": nonNil(down), "agent_id": s.agentID,
		"host": s.host, "refresh_tunnels": refreshTunnels}
	raw, err := s.conn.Call(ctx, s.target(topicPlugin, versionDeviceList), s.rctx, "update_device_list", args, s.timeout)
	if err != nil {
		return deviceListReply{}, fmt.Errorf("update_device_list (%d up, %d down): %w", len(up), len(down), err)
	}
	var r deviceListReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return deviceListReply{}, fmt.Errorf("update_device_list reply %s: %v: %w", truncate(raw), err, ErrBadMessage)
	}
	return r, nil
}

func truncate(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
