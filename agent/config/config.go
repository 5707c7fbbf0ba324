package config

// Config is the whole agent configuration: the nova.conf groups a compute
// host honours, the neutron openvswitch_agent.ini groups the L2-agent role
// honours, and our own [container] group. Every field comment mirrors
// etc/nova-container-agent.conf.sample.
type Config struct {
	Default             Default             `group:"DEFAULT"`
	Placement           Placement           `group:"placement"`
	Neutron             Neutron             `group:"neutron"`
	Glance              Glance              `group:"glance"`
	ServiceUser         ServiceUser         `group:"service_user"`
	OsloMessagingRabbit OsloMessagingRabbit `group:"oslo_messaging_rabbit"`
	OVS                 OVS                 `group:"ovs"`
	Agent               Agent               `group:"agent"`
	SecurityGroup       SecurityGroup       `group:"securitygroup"`
	Container           Container           `group:"container"`

	// Files lists the configuration files loaded, in order.
	Files []string
}

// Default is nova's (and neutron's) [DEFAULT] group, limited to what a
// compute host reads.
type Default struct {
	// Host is the name this compute registers under: the nova service host,
	// the compute node's hypervisor_hostname, the placement resource provider
	// name and the neutron binding:host_id. Default: the machine's hostname.
	Host string `opt:"host"`
	// TransportURL is the oslo.messaging URL of RabbitMQ,
	// rabbit://user:pass@host:port[,user:pass@host2:port]/vhost.
	TransportURL string `opt:"transport_url" default:"rabbit://"`
	// ReportInterval is the seconds between service heartbeats
	// (Service.save with report_count+1).
	ReportInterval int `opt:"report_interval" default:"10"`
	// ServiceDownTime is the seconds after which nova considers a service
	// down; only used here to warn when report_interval is too close to it.
	ServiceDownTime int `opt:"service_down_time" default:"60"`
	// StatePath is the top-level directory for the agent's state.
	StatePath string `opt:"state_path" default:"/var/lib/nova-container-agent"`
	// InstancesPath is where per-instance files (console logs, config drive
	// content) are kept.
	InstancesPath string `opt:"instances_path" default:"$state_path/instances"`
	// ReservedHostMemoryMB is memory kept for the host, reported as the
	// MEMORY_MB inventory's reserved amount.
	ReservedHostMemoryMB int `opt:"reserved_host_memory_mb" default:"512"`
	// ReservedHostDiskMB is disk kept for the host; placement gets
	// ceil(reserved_host_disk_mb / 1024) GiB reserved on DISK_GB.
	ReservedHostDiskMB int `opt:"reserved_host_disk_mb" default:"0"`
	// ReservedHostCPUs is the VCPU inventory's reserved amount.
	ReservedHostCPUs int `opt:"reserved_host_cpus" default:"0"`
	// CPUAllocationRatio, when set, overrides the VCPU allocation ratio in
	// placement on every update. None (unset) means: initial value on first
	// report, then keep whatever placement has.
	CPUAllocationRatio *float64 `opt:"cpu_allocation_ratio"`
	// RAMAllocationRatio is the MEMORY_MB counterpart of CPUAllocationRatio.
	RAMAllocationRatio *float64 `opt:"ram_allocation_ratio"`
	// DiskAllocationRatio is the DISK_GB counterpart of CPUAllocationRatio.
	DiskAllocationRatio *float64 `opt:"disk_allocation_ratio"`
	// InitialCPUAllocationRatio is used when cpu_allocation_ratio is unset and
	// the provider has no VCPU inventory yet (nova Zed default 16.0).
	InitialCPUAllocationRatio float64 `opt:"initial_cpu_allocation_ratio" default:"16.0"`
	// InitialRAMAllocationRatio: as above for MEMORY_MB (nova Zed default 1.5).
	InitialRAMAllocationRatio float64 `opt:"initial_ram_allocation_ratio" default:"1.5"`
	// InitialDiskAllocationRatio: as above for DISK_GB (nova Zed default 1.0).
	InitialDiskAllocationRatio float64 `opt:"initial_disk_allocation_ratio" default:"1.0"`
	// UpdateResourcesInterval is the seconds between resource audits; 0 means
	// the default periodic spacing (60 s), negative disables.
	UpdateResourcesInterval int `opt:"update_resources_interval" default:"0"`
	// SyncPowerStateInterval is the seconds between power-state syncs;
	// negative disables.
	SyncPowerStateInterval int `opt:"sync_power_state_interval" default:"600"`
	// RPCResponseTimeout is the seconds to wait for an RPC call's reply.
	RPCResponseTimeout int `opt:"rpc_response_timeout" default:"60"`
	// LongRPCTimeout is the timeout for calls known to be slow (with
	// call-monitor heartbeats).
	LongRPCTimeout int `opt:"long_rpc_timeout" default:"1800"`
	// HealInstanceInfoCacheInterval is the seconds between network info cache
	// refreshes of one instance; 0 or negative disables.
	HealInstanceInfoCacheInterval int `opt:"heal_instance_info_cache_interval" default:"60"`
	// ResumeGuestsStateOnHostBoot restarts instances that were running when
	// the host went down.
	ResumeGuestsStateOnHostBoot bool `opt:"resume_guests_state_on_host_boot" default:"false"`
	// VIFPluggingTimeout is the seconds to wait for network-vif-plugged; 0
	// means do not wait.
	VIFPluggingTimeout int `opt:"vif_plugging_timeout" default:"300"`
	// VIFPluggingIsFatal makes a vif-plugged timeout fail the build.
	VIFPluggingIsFatal bool `opt:"vif_plugging_is_fatal" default:"true"`
	// MyIP is this host's management IP (compute node host_ip). Default: the
	// first global unicast IPv4 address of an up interface.
	MyIP string `opt:"my_ip"`
	// Debug turns on debug logging.
	Debug bool `opt:"debug" default:"false"`
}

// KeystoneAuth is a keystoneauth1 "password" plugin section plus the
// adapter options nova reads from the same group.
type KeystoneAuth struct {
	// AuthType is the keystoneauth plugin; only "password" (alias
	// "v3password") is supported.
	AuthType string `opt:"auth_type"`
	// AuthURL is keystone's URL, e.g. http://controller:5000/v3.
	AuthURL string `opt:"auth_url"`
	// Username of the service user.
	Username string `opt:"username"`
	// UserID may be given instead of Username.
	UserID string `opt:"user_id"`
	// Password of the service user.
	Password string `opt:"password"`
	// ProjectName to scope the token to.
	ProjectName string `opt:"project_name"`
	// ProjectID may be given instead of ProjectName.
	ProjectID string `opt:"project_id"`
	// UserDomainName is the user's domain, e.g. Default.
	UserDomainName string `opt:"user_domain_name"`
	// UserDomainID may be given instead of UserDomainName.
	UserDomainID string `opt:"user_domain_id"`
	// ProjectDomainName is the project's domain, e.g. Default.
	ProjectDomainName string `opt:"project_domain_name"`
	// ProjectDomainID may be given instead of ProjectDomainName.
	ProjectDomainID string `opt:"project_domain_id"`
	// RegionName selects endpoints from the catalog.
	RegionName string `opt:"region_name"`
	// ValidInterfaces are the catalog interfaces to try, in order.
	ValidInterfaces []string `opt:"valid_interfaces" default:"internal,public"`
	// EndpointOverride skips the catalog and uses this URL.
	EndpointOverride string `opt:"endpoint_override"`
	// ServiceType is the catalog type of the service this group talks to;
	// empty means the group's natural type (placement, network, image).
	ServiceType string `opt:"service_type"`
	// Timeout is the HTTP request timeout in seconds; unset means none.
	Timeout *float64 `opt:"timeout"`
	// Insecure disables TLS certificate verification.
	Insecure bool `opt:"insecure" default:"false"`
	// CAFile is a PEM bundle to verify TLS certificates with.
	CAFile string `opt:"cafile"`
}

// Configured reports whether the section carries credentials at all.
func (k KeystoneAuth) Configured() bool { return k.AuthType != "" || k.AuthURL != "" }

// Placement is nova's [placement] group.
type Placement struct {
	KeystoneAuth
}

// Neutron is nova's [neutron] group.
type Neutron struct {
	KeystoneAuth
	// OVSBridge is the integration bridge nova assumes when neutron's
	// vif_details has no bridge_name.
	OVSBridge string `opt:"ovs_bridge" default:"br-int"`
	// HTTPRetries is how many times an idempotent neutron request is retried
	// on connection errors.
	HTTPRetries int `opt:"http_retries" default:"3"`
	// ExtensionSyncInterval is the seconds between refreshes of neutron's
	// extension list.
	ExtensionSyncInterval int `opt:"extension_sync_interval" default:"600"`
}

// Glance is nova's [glance] group. nova itself reaches glance with the
// requesting user's token; the optional credentials here are our extension,
// used only where no user token exists (the image subcommand, cache warm-up).
type Glance struct {
	KeystoneAuth
	// APIServers overrides the catalog with a list of glance URLs.
	APIServers []string `opt:"api_servers"`
	// NumRetries is how many times an image download is retried.
	NumRetries int `opt:"num_retries" default:"3"`
}

// ServiceUser is nova's [service_user] group: credentials whose token is
// sent as X-Service-Token beside a user's token, so that long operations
// survive the user token expiring.
type ServiceUser struct {
	KeystoneAuth
	// SendServiceUserToken turns the X-Service-Token header on.
	SendServiceUserToken bool `opt:"send_service_user_token" default:"false"`
}

// OsloMessagingRabbit is oslo.messaging's [oslo_messaging_rabbit] group,
// the options the Go driver honours.
type OsloMessagingRabbit struct {
	// HeartbeatTimeoutThreshold is the seconds after which a silent broker
	// connection is considered dead; 0 disables AMQP heartbeats.
	HeartbeatTimeoutThreshold int `opt:"heartbeat_timeout_threshold" default:"60"`
	// HeartbeatRate is how many times per threshold the heartbeat is checked.
	HeartbeatRate int `opt:"heartbeat_rate" default:"2"`
	// AMQPDurableQueues declares queues durable (must match the cloud).
	AMQPDurableQueues bool `opt:"amqp_durable_queues" default:"false"`
	// AMQPAutoDelete declares queues and exchanges auto-delete (must match).
	AMQPAutoDelete bool `opt:"amqp_auto_delete" default:"false"`
	// RabbitHAQueues sets x-ha-policy=all on queues (classic mirroring).
	RabbitHAQueues bool `opt:"rabbit_ha_queues" default:"false"`
	// RabbitTransientQueuesTTL is x-expires, in seconds, of fanout and reply
	// queues.
	RabbitTransientQueuesTTL int `opt:"rabbit_transient_queues_ttl" default:"1800"`
	// RabbitQOSPrefetchCount is the consumer prefetch; 0 is unlimited.
	RabbitQOSPrefetchCount int `opt:"rabbit_qos_prefetch_count" default:"0"`
	// RabbitRetryInterval is the seconds before the first reconnect.
	RabbitRetryInterval int `opt:"rabbit_retry_interval" default:"1"`
	// RabbitRetryBackoff is the seconds added per reconnect attempt.
	RabbitRetryBackoff int `opt:"rabbit_retry_backoff" default:"2"`
	// RabbitIntervalMax caps the reconnect interval.
	RabbitIntervalMax int `opt:"rabbit_interval_max" default:"30"`
	// KombuReconnectDelay is the seconds to wait before reconnecting after
	// a channel error.
	KombuReconnectDelay float64 `opt:"kombu_reconnect_delay" default:"1.0"`
	// DirectMandatoryFlag publishes replies with the mandatory flag so a
	// vanished caller is noticed.
	DirectMandatoryFlag bool `opt:"direct_mandatory_flag" default:"true"`
	// SSL connects with TLS.
	SSL bool `opt:"ssl" default:"false"`
	// SSLCAFile is the CA bundle for TLS.
	SSLCAFile string `opt:"ssl_ca_file"`
	// SSLCertFile is the client certificate for TLS.
	SSLCertFile string `opt:"ssl_cert_file"`
	// SSLKeyFile is the client key for TLS.
	SSLKeyFile string `opt:"ssl_key_file"`
}

// OVS is neutron openvswitch_agent.ini's [ovs] group.
type OVS struct {
	// IntegrationBridge is the bridge instances' ports are plugged into.
	IntegrationBridge string `opt:"integration_bridge" default:"br-int"`
	// BridgeMappings maps physical networks to bridges,
	// "physnet1:br-phys,physnet2:br-ex".
	BridgeMappings []string `opt:"bridge_mappings"`
	// DatapathType is the bridges' datapath: "system" (kernel) or "netdev"
	// (userspace).
	DatapathType string `opt:"datapath_type" default:"system"`
	// OFInterface is accepted for old files and ignored: Zed only has the
	// native OpenFlow driver, and we program flows with ovs-ofctl.
	OFInterface string `opt:"of_interface" default:"native"`
	// OVSDBConnection is the OVSDB endpoint. neutron defaults to
	// tcp:127.0.0.1:6640 and adds that manager itself; we connect to the local
	// unix socket, which needs no manager.
	OVSDBConnection string `opt:"ovsdb_connection" default:"unix:/var/run/openvswitch/db.sock"`
	// OVSDBTimeout is the seconds to wait for an OVSDB transaction.
	OVSDBTimeout int `opt:"ovsdb_timeout" default:"10"`
	// LocalIP is the tunnel endpoint address (tunnels are not supported;
	// accepted so existing files load).
	LocalIP string `opt:"local_ip"`
	// TunnelBridge is accepted and unused (no tunnel networks).
	TunnelBridge string `opt:"tunnel_bridge" default:"br-tun"`
	// IntPeerPatchPort is accepted and unused (no tunnel networks).
	IntPeerPatchPort string `opt:"int_peer_patch_port" default:"patch-tun"`
	// OFListenAddress is accepted and unused: we need no OpenFlow controller.
	OFListenAddress string `opt:"of_listen_address" default:"127.0.0.1"`
	// OFListenPort is accepted and unused.
	OFListenPort int `opt:"of_listen_port" default:"6633"`
	// OFConnectTimeout is accepted and unused.
	OFConnectTimeout int `opt:"of_connect_timeout" default:"300"`
	// OFRequestTimeout is the seconds an ovs-ofctl invocation may take.
	OFRequestTimeout int `opt:"of_request_timeout" default:"300"`
	// VhostuserSocketDir is accepted and unused (no vhost-user ports).
	VhostuserSocketDir string `opt:"vhostuser_socket_dir" default:"/var/run/openvswitch"`
}

// Agent is neutron openvswitch_agent.ini's [agent] group.
type Agent struct {
	// PollingInterval is the seconds between local device scans.
	PollingInterval int `opt:"polling_interval" default:"2"`
	// MinimizePolling uses the OVSDB monitor instead of full scans.
	MinimizePolling bool `opt:"minimize_polling" default:"true"`
	// ReportInterval is the seconds between neutron report_state calls (a
	// float in neutron); 0 disables state reports.
	ReportInterval float64 `opt:"report_interval" default:"30"`
	// TunnelTypes must stay empty: only flat and VLAN networks are supported.
	TunnelTypes []string `opt:"tunnel_types"`
	// L2Population is accepted and unused (tunnels only).
	L2Population bool `opt:"l2_population" default:"false"`
	// ExplicitlyEgressDirect is accepted and unused.
	ExplicitlyEgressDirect bool `opt:"explicitly_egress_direct" default:"false"`
}

// SecurityGroup is neutron's [securitygroup] group.
type SecurityGroup struct {
	// FirewallDriver is "noop" or "openvswitch"; "iptables_hybrid" is not
	// supported for containers.
	FirewallDriver string `opt:"firewall_driver" default:"noop"`
	// EnableSecurityGroup is reported to neutron in the agent state.
	EnableSecurityGroup bool `opt:"enable_security_group" default:"true"`
}

// Container is our own [container] group: how instances become containers.
type Container struct {
	// DockerHost is the Docker API endpoint.
	DockerHost string `opt:"docker_host" default:"unix:///var/run/docker.sock"`
	// MinDockerAPIVersion is the oldest Docker API accepted (Debian 12's
	// docker.io 20.10 speaks 1.41).
	MinDockerAPIVersion string `opt:"min_docker_api_version" default:"1.41"`
	// ImageStorePath holds downloaded glance images and converted root
	// filesystems.
	ImageStorePath string `opt:"image_store_path" default:"$state_path/images"`
	// ImageCacheSizeGB caps the image store; least recently used unused
	// images are removed beyond it. 0 disables the cap.
	ImageCacheSizeGB int `opt:"image_cache_size_gb" default:"20"`
	// LXCFSPath is where lxcfs is mounted; its proc files give containers
	// their own /proc/meminfo, cpuinfo and uptime.
	LXCFSPath string `opt:"lxcfs_path" default:"/var/lib/lxcfs"`
	// NeutronAgentMode: "full" makes this agent neutron's OVS L2 agent for the
	// host too (report_state, device up/down, flows); "compat" leaves that to
	// a real neutron-openvswitch-agent running beside it.
	NeutronAgentMode string `opt:"neutron_agent_mode" default:"full"`
	// NamePrefix prefixes container names (the rest is the instance uuid).
	NamePrefix string `opt:"name_prefix" default:"nova-"`
	// StopTimeout is the seconds a clean stop waits before SIGKILL.
	StopTimeout int `opt:"stop_timeout" default:"60"`
	// CgroupParent is the cgroup under which containers are created; empty
	// uses Docker's default.
	CgroupParent string `opt:"cgroup_parent"`
}
