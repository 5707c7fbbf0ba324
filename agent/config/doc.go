// Package config loads the agent's configuration: one or more oslo.config
// INI files (nova.conf groups, neutron's openvswitch_agent.ini groups and our
// own [container] group) parsed exactly as oslo.config parses them, bound to
// typed structs, defaulted and validated before anything runs.
//
// Semantics copied from oslo.config, because operators' existing files must
// mean the same thing here:
//   - several files are read in order; for a single-valued option the last
//     file that sets it wins, multi-valued options accumulate across files;
//   - within a file a repeated key appends (multi) or overrides (single);
//   - group names other than DEFAULT are case-insensitive ([OVS] == [ovs]);
//   - options of other groups do not inherit from [DEFAULT]; only "$name"
//     interpolation falls back to [DEFAULT] when the current group has no
//     option of that name ("$group.name" names a group explicitly);
//   - unknown groups and options are ignored; malformed lines are errors
//     naming file:line.
//
// Example:
//
//	cfg, err := config.Load([]string{"/etc/nova/nova-container-agent.conf",
//		"/etc/neutron/plugins/ml2/openvswitch_agent.ini"})
//	if err != nil {
//		return fmt.Errorf("load configuration: %w", err)
//	}
//	urls := must(config.ParseTransportURL(cfg.Default.TransportURL)).AMQPURLs()
package config
