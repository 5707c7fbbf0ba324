// Package neutron plays neutron's ML2/OVS L2 agent ("neutron-openvswitch-agent") for this host,
// so that a container host needs no Python: the ML2 openvswitch mechanism driver binds ports to
// the host (vif_type ovs) because an alive "Open vSwitch agent" with our bridge_mappings reports
// for it, and ports go ACTIVE (and nova gets network-vif-plugged) because we report them up.
//
// What the Agent does, each part mirroring the Zed agent (ovs_neutron_agent.py):
//
//   - At start it asks has_alive_neutron_server until neutron-server answers, then calls
//     report_state 1.2 on q-reports-plugin every [agent] report_interval with the same
//     agent_state the Python agent sends (start_flag until the first full sync,
//     resource_versions on the first report only; a "revived" answer forces a full resync).
//   - It subscribes to the legacy fanouts q-agent-notifier-port-update, -port-delete and
//     -network-update exactly as neutron's create_consumers does (topic queue, topic.host queue
//     and a fanout queue per topic), which neutron-server still sends beside its versioned
//     object pushes.
//   - Its device loop scans the integration bridge (Ports) every polling interval, and at once
//     when a notification or Resync asks. New, changed or notified ports are looked up with
//     get_devices_details_list_and_failed_devices 1.5, bound on the dataplane (local VLAN tag,
//     translation flows) and reported with update_device_list 1.9 devices_up; ports that left
//     the bridge are reported devices_down and their network's local VLAN is reclaimed when it
//     was the last one. Ports neutron does not bind here go to the dead VLAN 4095.
//
// Device details come from get_devices_details_list_and_failed_devices rather than the Zed
// agent's object cache (bulk_pull of Port and Network objects plus get_network_details, see the
// recorded traffic): the server computes the bound segment itself, answers every port of a pass
// in one call and moves the port to BUILD, so status goes DOWN -> BUILD -> ACTIVE exactly as
// with pre-cache agents, which nova's notifier turns into network-vif-plugged. The cache path
// would need a full decoder of Port 1.7 binding levels and a subscription to every
// neutron-vo-* push to stay correct, for the same outcome.
//
// In compatibility mode ([container] neutron_agent_mode = compat) a real
// neutron-openvswitch-agent owns tags and flows: Run returns at once, nothing is sent, and the
// plug path only writes the Interface external_ids.
//
// Example (the lead's wiring):
//
//	conn, _ := rpc.Dial(ctx, url, rpc.WithBinary("neutron-openvswitch-agent"))
//	ovsc, _ := ovs.Dial(ctx, ovsdbEndpoint, ovs.WithIntegrationBridge("br-int"), ...)
//	sw := ovs.NewSwitch(ovsc, flows.NewApplier(flows.ExecRunner{}, cookie))
//	a, err := neutron.NewAgent(conn, host, cfg, ovsc, neutron.NewSwitchDataplane(sw), log)
//	go a.Run(ctx)
//	...
//	// right after plugging an instance's port:
//	err = a.Resync(ctx, portID)
package neutron
