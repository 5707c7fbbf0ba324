package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every validation failure.
var ErrInvalid = errors.New("invalid configuration")

// ErrNoConfigFile is returned by Load when given no file at all.
var ErrNoConfigFile = errors.New("no --config-file given")

// LoadOption adjusts how Load fills environment-derived defaults; tests use
// it to stay independent of the machine.
type LoadOption func(*loadOptions)

type loadOptions struct {
	hostname func() (string, error)
	myIP     func() (string, error)
}

// WithHostname replaces os.Hostname as the source of the [DEFAULT] host default.
func WithHostname(f func() (string, error)) LoadOption {
	return func(o *loadOptions) { o.hostname = f }
}

// WithMyIP replaces interface discovery as the source of the [DEFAULT] my_ip default.
func WithMyIP(f func() (string, error)) LoadOption {
	return func(o *loadOptions) { o.myIP = f }
}

// Load parses the files in order (later files win, multi-valued options
// accumulate), binds them to a Config, fills defaults and validates. A
// missing or unreadable file is an error — unlike oslo, which only warns,
// because a compute that silently starts without its credentials file does
// more harm than one that refuses to start.
func Load(paths []string, opts ...LoadOption) (*Config, error) {
	if len(paths) == 0 {
		return nil, ErrNoConfigFile
	}
	files := make(Files, 0, len(paths))
	for _, p := range paths {
		f, err := ParseFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return FromFiles(files, opts...)
}

// FromFiles binds already parsed files; see Load.
func FromFiles(files Files, opts ...LoadOption) (*Config, error) {
	o := loadOptions{hostname: os.Hostname, myIP: firstIPv4}
	for _, opt := range opts {
		opt(&o)
	}
	cfg := &Config{}
	for _, f := range files {
		cfg.Files = append(cfg.Files, f.Name)
	}
	if err := bind(cfg, files); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := cfg.setDefaults(o); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// setDefaults fills values whose defaults depend on the machine or on
// another group.
func (c *Config) setDefaults(o loadOptions) error {
	if c.Default.Host == "" {
		h, err := o.hostname()
		if err != nil {
			return fmt.Errorf("default [DEFAULT] host from hostname: %w", err)
		}
		c.Default.Host = h
	}
	if c.Default.MyIP == "" {
		ip, err := o.myIP()
		if err != nil {
			return fmt.Errorf("default [DEFAULT] my_ip: %w (set my_ip explicitly)", err)
		}
		c.Default.MyIP = ip
	}
	for _, s := range []struct {
		auth *KeystoneAuth
		typ  string
	}{{&c.Placement.KeystoneAuth, "placement"}, {&c.Neutron.KeystoneAuth, "network"},
		{&c.Glance.KeystoneAuth, "image"}, {&c.ServiceUser.KeystoneAuth, "identity"}} {
		if s.auth.ServiceType == "" {
			s.auth.ServiceType = s.typ
		}
	}
	return nil
}

// firstIPv4 approximates oslo's my_ip default (the source address of the
// default route) without sending anything: the first global unicast IPv4
// address of an interface that is up.
func firstIPv4() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}

// Validate checks every option's range and the cross-option rules, and
// reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(group, opt, format string, args ...any) {
		errs = append(errs, fmt.Errorf("[%s] %s: %s", group, opt, fmt.Sprintf(format, args...)))
	}
	d := &c.Default
	if d.Host == "" {
		bad("DEFAULT", "host", "must not be empty")
	}
	if _, err := ParseTransportURL(d.TransportURL); err != nil {
		bad("DEFAULT", "transport_url", "%v", err)
	}
	if d.ReportInterval < 1 {
		bad("DEFAULT", "report_interval", "must be at least 1 second, got %d", d.ReportInterval)
	}
	if d.ServiceDownTime <= d.ReportInterval {
		bad("DEFAULT", "service_down_time", "%d must exceed report_interval %d or nova will see this host flap down",
			d.ServiceDownTime, d.ReportInterval)
	}
	for name, v := range map[string]int{"reserved_host_memory_mb": d.ReservedHostMemoryMB,
		"reserved_host_disk_mb": d.ReservedHostDiskMB, "reserved_host_cpus": d.ReservedHostCPUs,
		"rpc_response_timeout": d.RPCResponseTimeout, "long_rpc_timeout": d.LongRPCTimeout,
		"vif_plugging_timeout": d.VIFPluggingTimeout} {
		if v < 0 {
			bad("DEFAULT", name, "must not be negative, got %d", v)
		}
	}
	for name, v := range map[string]*float64{"cpu_allocation_ratio": d.CPUAllocationRatio,
		"ram_allocation_ratio": d.RAMAllocationRatio, "disk_allocation_ratio": d.DiskAllocationRatio} {
		if v != nil && *v < 0 {
			bad("DEFAULT", name, "must not be negative, got %g", *v)
		}
	}
	for name, v := range map[string]float64{"initial_cpu_allocation_ratio": d.InitialCPUAllocationRatio,
		"initial_ram_allocation_ratio":  d.InitialRAMAllocationRatio,
		"initial_disk_allocation_ratio": d.InitialDiskAllocationRatio} {
		if v < 0 {
			bad("DEFAULT", name, "must not be negative, got %g", v)
		}
	}
	if net.ParseIP(d.MyIP) == nil {
		bad("DEFAULT", "my_ip", "%q is not an IP address", d.MyIP)
	}

	for _, s := range []struct {
		group    string
		auth     KeystoneAuth
		required bool
	}{
		{"placement", c.Placement.KeystoneAuth, true},
		{"neutron", c.Neutron.KeystoneAuth, true},
		{"glance", c.Glance.KeystoneAuth, false},
		{"service_user", c.ServiceUser.KeystoneAuth, c.ServiceUser.SendServiceUserToken},
	} {
		if !s.required && !s.auth.Configured() {
			continue
		}
		for _, e := range s.auth.problems() {
			bad(s.group, e[0], "%s", e[1])
		}
	}

	if c.Neutron.HTTPRetries < 0 {
		bad("neutron", "http_retries", "must not be negative")
	}
	if c.OsloMessagingRabbit.HeartbeatTimeoutThreshold < 0 {
		bad("oslo_messaging_rabbit", "heartbeat_timeout_threshold", "must not be negative")
	}
	if c.OsloMessagingRabbit.HeartbeatRate < 1 {
		bad("oslo_messaging_rabbit", "heartbeat_rate", "must be at least 1")
	}
	if c.OsloMessagingRabbit.RabbitTransientQueuesTTL < 1 {
		bad("oslo_messaging_rabbit", "rabbit_transient_queues_ttl", "must be at least 1")
	}

	if c.OVS.IntegrationBridge == "" {
		bad("ovs", "integration_bridge", "must not be empty")
	}
	if _, err := c.OVS.BridgeMappingsMap(); err != nil {
		bad("ovs", "bridge_mappings", "%v", err)
	}
	if c.OVS.DatapathType != "system" && c.OVS.DatapathType != "netdev" {
		bad("ovs", "datapath_type", "%q is not one of system, netdev", c.OVS.DatapathType)
	}
	if !strings.HasPrefix(c.OVS.OVSDBConnection, "unix:") && !strings.HasPrefix(c.OVS.OVSDBConnection, "tcp:") {
		bad("ovs", "ovsdb_connection", "%q must start with unix: or tcp:", c.OVS.OVSDBConnection)
	}
	if len(c.Agent.TunnelTypes) > 0 {
		bad("agent", "tunnel_types", "tunnel networks (%s) are not supported; leave it empty",
			strings.Join(c.Agent.TunnelTypes, ","))
	}
	switch c.SecurityGroup.FirewallDriver {
	case "noop", "openvswitch":
	default:
		bad("securitygroup", "firewall_driver", "%q is not supported; use noop or openvswitch",
			c.SecurityGroup.FirewallDriver)
	}

	ct := &c.Container
	if ct.NeutronAgentMode != "full" && ct.NeutronAgentMode != "compat" {
		bad("container", "neutron_agent_mode", "%q is not one of full, compat", ct.NeutronAgentMode)
	}
	if !strings.Contains(ct.DockerHost, "://") {
		bad("container", "docker_host", "%q needs a scheme such as unix:// or tcp://", ct.DockerHost)
	}
	if _, _, err := ParseAPIVersion(ct.MinDockerAPIVersion); err != nil {
		bad("container", "min_docker_api_version", "%v", err)
	}
	if ct.ImageCacheSizeGB < 0 {
		bad("container", "image_cache_size_gb", "must not be negative")
	}
	if ct.StopTimeout < 0 {
		bad("container", "stop_timeout", "must not be negative")
	}
	for name, p := range map[string]string{"image_store_path": ct.ImageStorePath, "lxcfs_path": ct.LXCFSPath} {
		if !strings.HasPrefix(p, "/") {
			bad("container", name, "%q must be an absolute path", p)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}

// problems lists missing or unsupported settings of an auth section as
// (option, reason) pairs.
func (k KeystoneAuth) problems() [][2]string {
	var out [][2]string
	switch k.AuthType {
	case "password", "v3password":
	case "":
		out = append(out, [2]string{"auth_type", "must be set (password)"})
	default:
		out = append(out, [2]string{"auth_type", fmt.Sprintf("%q is not supported; use password", k.AuthType)})
	}
	if u, err := url.Parse(k.AuthURL); k.AuthURL == "" || err != nil || u.Host == "" {
		out = append(out, [2]string{"auth_url", fmt.Sprintf("%q is not a URL", k.AuthURL)})
	}
	if k.Username == "" && k.UserID == "" {
		out = append(out, [2]string{"username", "username or user_id must be set"})
	}
	if k.Password == "" {
		out = append(out, [2]string{"password", "must be set"})
	}
	if k.ProjectName == "" && k.ProjectID == "" {
		out = append(out, [2]string{"project_name", "project_name or project_id must be set"})
	}
	if k.UserID == "" && k.UserDomainName == "" && k.UserDomainID == "" {
		out = append(out, [2]string{"user_domain_name", "user_domain_name or user_domain_id must be set with username"})
	}
	if k.ProjectID == "" && k.ProjectDomainName == "" && k.ProjectDomainID == "" {
		out = append(out, [2]string{"project_domain_name", "project_domain_name or project_domain_id must be set with project_name"})
	}
	for _, i := range k.ValidInterfaces {
		switch strings.TrimSuffix(i, "URL") {
		case "internal", "public", "admin":
		default:
			out = append(out, [2]string{"valid_interfaces", fmt.Sprintf("%q is not one of internal, public, admin", i)})
		}
	}
	if k.EndpointOverride != "" {
		if u, err := url.Parse(k.EndpointOverride); err != nil || u.Host == "" {
			out = append(out, [2]string{"endpoint_override", fmt.Sprintf("%q is not a URL", k.EndpointOverride)})
		}
	}
	return out
}

// BridgeMappingsMap parses bridge_mappings into physnet → bridge. Duplicate
// physical networks or bridges are errors, as in neutron's
// helpers.parse_mappings.
func (o OVS) BridgeMappingsMap() (map[string]string, error) {
	out := map[string]string{}
	seenBridge := map[string]string{}
	for _, m := range o.BridgeMappings {
		if strings.TrimSpace(m) == "" {
			continue
		}
		phys, br, ok := strings.Cut(m, ":")
		phys, br = strings.TrimSpace(phys), strings.TrimSpace(br)
		if !ok || phys == "" || br == "" {
			return nil, fmt.Errorf("%q is not physnet:bridge", m)
		}
		if _, dup := out[phys]; dup {
			return nil, fmt.Errorf("physical network %q mapped twice", phys)
		}
		if p, dup := seenBridge[br]; dup {
			return nil, fmt.Errorf("bridge %q mapped to both %q and %q", br, p, phys)
		}
		out[phys], seenBridge[br] = br, phys
	}
	return out, nil
}

// AllocationRatio returns the allocation ratio to report for a standard
// resource class with nova's precedence (nova/virt/driver.py
// ComputeDriver._get_allocation_ratios): a configured, non-zero
// [DEFAULT] *_allocation_ratio wins; otherwise keep the ratio placement
// already has (operators may change it there); otherwise the initial_*
// value. rc is VCPU, MEMORY_MB or DISK_GB.
func (d Default) AllocationRatio(rc string, current float64, inPlacement bool) (float64, error) {
	var conf *float64
	var initial float64
	switch rc {
	case "VCPU":
		conf, initial = d.CPUAllocationRatio, d.InitialCPUAllocationRatio
	case "MEMORY_MB":
		conf, initial = d.RAMAllocationRatio, d.InitialRAMAllocationRatio
	case "DISK_GB":
		conf, initial = d.DiskAllocationRatio, d.InitialDiskAllocationRatio
	default:
		return 0, fmt.Errorf("allocation ratio for resource class %q: not a standard class", rc)
	}
	// nova treats 0.0 like None: it was the pre-Stein "unset" value.
	if conf != nil && *conf != 0 {
		return *conf, nil
	}
	if inPlacement {
		return current, nil
	}
	return initial, nil
}

// ParseAPIVersion splits "1.41" into 1 and 41.
func ParseAPIVersion(v string) (major, minor int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(v), ".")
	if !ok {
		return 0, 0, fmt.Errorf("API version %q is not MAJOR.MINOR", v)
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, fmt.Errorf("API version %q is not MAJOR.MINOR", v)
	}
	return major, minor, nil
}
