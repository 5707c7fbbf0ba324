package objects

import (
	"encoding/json"
	"fmt"
	"time"
)

// Typed views of the nova objects a compute handles. Each wraps the generic *Object, so
// fields this agent does not interpret are carried along untouched; the accessors only
// give typed names to the fields that matter (protocols.md §2.6). Each AsX checks the class
// name and the types of the fields its accessors read, so accessors never fail later.

// view wraps o after checking its class and schema.
func view(o *Object, class string, s schema) error {
	if err := o.Expect(class); err != nil {
		return err
	}
	if err := s.validate(o); err != nil {
		return err
	}
	return nil
}

// decodeView decodes raw as an object primitive of class and validates it.
func decodeView(raw []byte, class string, s schema) (*Object, error) {
	o, err := ObjectFrom(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", class, err)
	}
	if err := view(o, class, s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", class, err)
	}
	return o, nil
}

// nested reads an Object field of o as class with schema s; nil when unset or null.
func nested(o *Object, field, class string, s schema) (*Object, error) {
	var n *Object
	if err := o.Get(field, &n); err != nil {
		if o.Has(field) {
			return nil, err
		}
		return nil, nil
	}
	if n == nil {
		return nil, nil
	}
	if err := view(n, class, s); err != nil {
		return nil, fmt.Errorf("%s.%s: %w", o.Name, field, err)
	}
	return n, nil
}

// ---- Instance ----

var instanceSchema = schema{
	"id": integer(), "uuid": str(), "host": nstr(), "node": nstr(), "vm_state": nstr(),
	"task_state": nstr(), "power_state": ninteger(), "flavor": obj("Flavor"),
	"new_flavor": nobj("Flavor"), "old_flavor": nobj("Flavor"), "image_ref": nstr(),
	"system_metadata": dictStr(), "metadata": dictStr(), "key_data": nstr(), "key_name": nstr(),
	"user_data": nstr(), "hostname": nstr(), "display_name": nstr(), "launched_at": ntime(),
	"terminated_at": ntime(), "launched_on": nstr(), "info_cache": nobj("InstanceInfoCache"),
	"project_id": nstr(), "user_id": nstr(), "memory_mb": ninteger(), "vcpus": ninteger(),
	"root_gb": ninteger(), "ephemeral_gb": ninteger(), "availability_zone": nstr(),
	"root_device_name": nstr(), "config_drive": nstr(), "locked": boolean(), "deleted": boolean(),
	"progress": ninteger(), "created_at": ntime(), "updated_at": ntime(), "os_type": nstr(),
	"cleaned": boolean(), "shutdown_terminate": boolean(),
}

// Instance is a view of a nova Instance (2.7).
type Instance struct{ *Object }

// AsInstance views o as an Instance.
func AsInstance(o *Object) (*Instance, error) {
	if err := view(o, "Instance", instanceSchema); err != nil {
		return nil, err
	}
	return &Instance{o}, nil
}

// UnmarshalJSON decodes and validates an Instance primitive.
func (i *Instance) UnmarshalJSON(b []byte) error {
	o, err := decodeView(b, "Instance", instanceSchema)
	if err != nil {
		return err
	}
	i.Object = o
	return nil
}

// ID is the database id.
func (i *Instance) ID() int64 { v, _ := i.getInt("id"); return v }

// UUID is the instance uuid.
func (i *Instance) UUID() string { return i.getString("uuid") }

// Host is the compute host the instance is on ("" when None).
func (i *Instance) Host() string { return i.getString("host") }

// Node is the hypervisor node name ("" when None).
func (i *Instance) Node() string { return i.getString("node") }

// VMState is the vm_state.
func (i *Instance) VMState() VMState { return VMState(i.getString("vm_state")) }

// TaskState is the task_state (TaskNone when None).
func (i *Instance) TaskState() TaskState { return TaskState(i.getString("task_state")) }

// PowerState is the power_state (PowerNoState when None or unset).
func (i *Instance) PowerState() PowerState { v, _ := i.getInt("power_state"); return PowerState(v) }

// Flavor is the current flavor; nil when the field is not loaded.
func (i *Instance) Flavor() (*Flavor, error) { return flavorField(i.Object, "flavor") }

// NewFlavor is the flavor being resized to; nil when None or not loaded.
func (i *Instance) NewFlavor() (*Flavor, error) { return flavorField(i.Object, "new_flavor") }

// OldFlavor is the flavor being resized from; nil when None or not loaded.
func (i *Instance) OldFlavor() (*Flavor, error) { return flavorField(i.Object, "old_flavor") }

func flavorField(o *Object, f string) (*Flavor, error) {
	n, err := nested(o, f, "Flavor", flavorSchema)
	if err != nil || n == nil {
		return nil, err
	}
	return &Flavor{n}, nil
}

// ImageRef is the glance image id the instance was built from.
func (i *Instance) ImageRef() string { return i.getString("image_ref") }

// SystemMetadata is system_metadata (image_* properties, owner names...).
func (i *Instance) SystemMetadata() map[string]string { return i.getDictStr("system_metadata") }

// Metadata is the user metadata.
func (i *Instance) Metadata() map[string]string { return i.getDictStr("metadata") }

// KeyData is the public key injected at boot ("" when none).
func (i *Instance) KeyData() string { return i.getString("key_data") }

// ConfigDrive is config_drive: "True" (or an image id) when the user asked for one, "" otherwise.
func (i *Instance) ConfigDrive() string { return i.getString("config_drive") }

// KeyName is the keypair name ("" when none).
func (i *Instance) KeyName() string { return i.getString("key_name") }

// UserData is the base64 user data ("" when none).
func (i *Instance) UserData() string { return i.getString("user_data") }

// Hostname is the guest hostname.
func (i *Instance) Hostname() string { return i.getString("hostname") }

// DisplayName is the server name.
func (i *Instance) DisplayName() string { return i.getString("display_name") }

// ProjectID owns the instance.
func (i *Instance) ProjectID() string { return i.getString("project_id") }

// UserID created the instance.
func (i *Instance) UserID() string { return i.getString("user_id") }

// AvailabilityZone is the instance's AZ ("" when None).
func (i *Instance) AvailabilityZone() string { return i.getString("availability_zone") }

// MemoryMB, VCPUs, RootGB and EphemeralGB mirror the flavor at build time.
func (i *Instance) MemoryMB() int64 { v, _ := i.getInt("memory_mb"); return v }

// VCPUs is the vCPU count recorded on the instance.
func (i *Instance) VCPUs() int64 { v, _ := i.getInt("vcpus"); return v }

// RootGB is the root disk size recorded on the instance.
func (i *Instance) RootGB() int64 { v, _ := i.getInt("root_gb"); return v }

// EphemeralGB is the ephemeral disk size recorded on the instance.
func (i *Instance) EphemeralGB() int64 { v, _ := i.getInt("ephemeral_gb"); return v }

// Locked reports the lock flag.
func (i *Instance) Locked() bool { return i.getBool("locked") }

// Deleted reports the soft-delete flag.
func (i *Instance) Deleted() bool { return i.getBool("deleted") }

// LaunchedAt is when the instance first became active; ok is false when None/unset.
func (i *Instance) LaunchedAt() (time.Time, bool) { return i.getTime("launched_at") }

// TerminatedAt is when the instance was deleted; ok is false when None/unset.
func (i *Instance) TerminatedAt() (time.Time, bool) { return i.getTime("terminated_at") }

// InfoCache is the network info cache; nil when None or not loaded.
func (i *Instance) InfoCache() (*InstanceInfoCache, error) {
	n, err := nested(i.Object, "info_cache", "InstanceInfoCache", infoCacheSchema)
	if err != nil || n == nil {
		return nil, err
	}
	return &InstanceInfoCache{n}, nil
}

// SetVMState assigns vm_state (and marks it changed).
func (i *Instance) SetVMState(s VMState) { i.mustSet("vm_state", string(s)) }

// SetTaskState assigns task_state; TaskNone stores None.
func (i *Instance) SetTaskState(s TaskState) { i.mustSet("task_state", s.Primitive()) }

// SetPowerState assigns power_state.
func (i *Instance) SetPowerState(p PowerState) { i.mustSet("power_state", int(p)) }

// SetHost assigns host ("" stores None).
func (i *Instance) SetHost(h string) { i.setOptString("host", h) }

// SetNode assigns node ("" stores None).
func (i *Instance) SetNode(n string) { i.setOptString("node", n) }

// SetLaunchedOn assigns launched_on ("" stores None).
func (i *Instance) SetLaunchedOn(h string) { i.setOptString("launched_on", h) }

// SetAvailabilityZone assigns availability_zone ("" stores None).
func (i *Instance) SetAvailabilityZone(z string) { i.setOptString("availability_zone", z) }

// SetLaunchedAt assigns launched_at (zero time stores None).
func (i *Instance) SetLaunchedAt(t time.Time) { i.setTime("launched_at", t) }

// SetTerminatedAt assigns terminated_at (zero time stores None).
func (i *Instance) SetTerminatedAt(t time.Time) { i.setTime("terminated_at", t) }

// SetProgress assigns progress (percent).
func (i *Instance) SetProgress(p int) { i.mustSet("progress", p) }

// SetRootDeviceName assigns root_device_name ("" stores None).
func (i *Instance) SetRootDeviceName(n string) { i.setOptString("root_device_name", n) }

// ---- Flavor ----

var flavorSchema = schema{
	"id": integer(), "flavorid": str(), "name": nstr(), "memory_mb": integer(), "vcpus": integer(),
	"root_gb": integer(), "ephemeral_gb": integer(), "swap": integer(), "rxtx_factor": nfloat(),
	"vcpu_weight": ninteger(), "disabled": boolean(), "is_public": boolean(),
	"extra_specs": dictStr(), "description": nstr(),
}

// Flavor is a view of a nova Flavor (1.2).
type Flavor struct{ *Object }

// AsFlavor views o as a Flavor.
func AsFlavor(o *Object) (*Flavor, error) {
	if err := view(o, "Flavor", flavorSchema); err != nil {
		return nil, err
	}
	return &Flavor{o}, nil
}

// Name is the flavor name.
func (f *Flavor) Name() string { return f.getString("name") }

// FlavorID is the API flavor id.
func (f *Flavor) FlavorID() string { return f.getString("flavorid") }

// MemoryMB is the RAM in MiB.
func (f *Flavor) MemoryMB() int64 { v, _ := f.getInt("memory_mb"); return v }

// VCPUs is the number of vCPUs.
func (f *Flavor) VCPUs() int64 { v, _ := f.getInt("vcpus"); return v }

// RootGB is the root disk in GiB.
func (f *Flavor) RootGB() int64 { v, _ := f.getInt("root_gb"); return v }

// EphemeralGB is the ephemeral disk in GiB.
func (f *Flavor) EphemeralGB() int64 { v, _ := f.getInt("ephemeral_gb"); return v }

// SwapMB is the swap size in MiB.
func (f *Flavor) SwapMB() int64 { v, _ := f.getInt("swap"); return v }

// ExtraSpecs are the flavor extra specs (quota:*, hw:* ...).
func (f *Flavor) ExtraSpecs() map[string]string { return f.getDictStr("extra_specs") }

// ---- ImageMeta ----

var imageMetaSchema = schema{
	"id": str(), "name": str(), "status": str(), "checksum": str(), "owner": str(),
	"size": integer(), "virtual_size": integer(), "container_format": str(), "disk_format": str(),
	"min_ram": integer(), "min_disk": integer(), "properties": obj("ImageMetaProps"),
	"tags": listStr(), "protected": {kind: kFlexBool}, "created_at": ntime(), "updated_at": ntime(),
}

// ImageMeta is a view of a nova ImageMeta (1.8).
type ImageMeta struct{ *Object }

// AsImageMeta views o as an ImageMeta.
func AsImageMeta(o *Object) (*ImageMeta, error) {
	if err := view(o, "ImageMeta", imageMetaSchema); err != nil {
		return nil, err
	}
	return &ImageMeta{o}, nil
}

// ID is the glance image id.
func (m *ImageMeta) ID() string { return m.getString("id") }

// Name is the image name.
func (m *ImageMeta) Name() string { return m.getString("name") }

// DiskFormat is e.g. "qcow2" or "raw".
func (m *ImageMeta) DiskFormat() string { return m.getString("disk_format") }

// ContainerFormat is e.g. "bare".
func (m *ImageMeta) ContainerFormat() string { return m.getString("container_format") }

// Size is the image size in bytes.
func (m *ImageMeta) Size() int64 { v, _ := m.getInt("size"); return v }

// MinRAM and MinDisk are the image's minimum flavor requirements.
func (m *ImageMeta) MinRAM() int64 { v, _ := m.getInt("min_ram"); return v }

// MinDisk is the minimum root disk in GiB.
func (m *ImageMeta) MinDisk() int64 { v, _ := m.getInt("min_disk"); return v }

// Properties returns the ImageMetaProps data (hw_*, os_* ...) as raw primitives;
// nil when unset.
func (m *ImageMeta) Properties() (map[string]json.RawMessage, error) {
	n, err := nested(m.Object, "properties", "ImageMetaProps", nil)
	if err != nil || n == nil {
		return nil, err
	}
	return n.Data, nil
}

// ---- Service ----

var serviceSchema = schema{
	"id": integer(), "uuid": str(), "host": nstr(), "binary": nstr(), "topic": nstr(),
	"report_count": integer(), "disabled": boolean(), "disabled_reason": nstr(),
	"availability_zone": nstr(), "forced_down": boolean(), "version": integer(),
	"last_seen_up": ntime(), "created_at": ntime(), "updated_at": ntime(),
}

// Service is a view of a nova Service (1.22): the services row of this compute.
type Service struct{ *Object }

// ServiceVersion is Zed's nova/objects/service.py:SERVICE_VERSION. A compute must register
// with it: older values make the rest of the cloud refuse to start (TooOldComputeService).
const ServiceVersion = 64

// AsService views o as a Service.
func AsService(o *Object) (*Service, error) {
	if err := view(o, "Service", serviceSchema); err != nil {
		return nil, err
	}
	return &Service{o}, nil
}

// NewService builds the Service nova-compute creates on first start
// (nova/service.py:Service.start): host, binary, topic, report_count=0 and version=64,
// all marked changed.
func NewService(host, binary, topic string) *Service {
	s := &Service{New("Service", mustZed("Service"))}
	s.mustSet("host", host)
	s.mustSet("binary", binary)
	s.mustSet("topic", topic)
	s.mustSet("report_count", 0)
	s.mustSet("version", ServiceVersion)
	return s
}

// ID is the database id.
func (s *Service) ID() int64 { v, _ := s.getInt("id"); return v }

// UUID is the service uuid (assigned by the conductor on create).
func (s *Service) UUID() string { return s.getString("uuid") }

// Host is the service host.
func (s *Service) Host() string { return s.getString("host") }

// Binary is e.g. "nova-compute".
func (s *Service) Binary() string { return s.getString("binary") }

// ReportCount is the heartbeat counter.
func (s *Service) ReportCount() int64 { v, _ := s.getInt("report_count"); return v }

// ServiceVersion is the service version field (64 for Zed).
func (s *Service) ServiceVersion() int64 { v, _ := s.getInt("version"); return v }

// Disabled reports whether an operator disabled the service.
func (s *Service) Disabled() bool { return s.getBool("disabled") }

// DisabledReason is the operator's reason ("" when None).
func (s *Service) DisabledReason() string { return s.getString("disabled_reason") }

// ForcedDown reports the forced_down flag.
func (s *Service) ForcedDown() bool { return s.getBool("forced_down") }

// LastSeenUp is the last heartbeat the DB accepted; ok is false when None.
func (s *Service) LastSeenUp() (time.Time, bool) { return s.getTime("last_seen_up") }

// IncrementReportCount adds one to report_count and marks it changed: the heartbeat.
// The DB only refreshes last_seen_up when the new count is greater than the stored one.
func (s *Service) IncrementReportCount() { s.mustSet("report_count", s.ReportCount()+1) }

// SetVersion assigns the service version.
func (s *Service) SetVersion(v int) { s.mustSet("version", v) }

// ---- ComputeNode ----

var computeNodeSchema = schema{
	"id": integer(), "uuid": str(), "host": nstr(), "hypervisor_hostname": nstr(),
	"hypervisor_type": str(), "hypervisor_version": integer(), "vcpus": integer(),
	"vcpus_used": integer(), "memory_mb": integer(), "memory_mb_used": integer(),
	"local_gb": integer(), "local_gb_used": integer(), "free_ram_mb": ninteger(),
	"free_disk_gb": ninteger(), "disk_available_least": ninteger(), "running_vms": ninteger(),
	"current_workload": ninteger(), "cpu_info": nstr(), "metrics": nstr(), "numa_topology": nstr(),
	"host_ip": nstr(), "cpu_allocation_ratio": float(), "ram_allocation_ratio": float(),
	"disk_allocation_ratio": float(), "stats": ndictStr(), "mapped": integer(),
	"service_id": ninteger(), "supported_hv_specs": objList("HVSpec"),
	"pci_device_pools": nobj("PciDevicePoolList"),
}

// ComputeNode is a view of a nova ComputeNode (1.19).
type ComputeNode struct{ *Object }

// AsComputeNode views o as a ComputeNode.
func AsComputeNode(o *Object) (*ComputeNode, error) {
	if err := view(o, "ComputeNode", computeNodeSchema); err != nil {
		return nil, err
	}
	return &ComputeNode{o}, nil
}

// NewComputeNode returns an empty ComputeNode at the Zed version; fill it with Set.
func NewComputeNode() *ComputeNode { return &ComputeNode{New("ComputeNode", mustZed("ComputeNode"))} }

// ID is the database id (needed e.g. by PciDeviceList.get_by_compute_node).
func (c *ComputeNode) ID() int64 { v, _ := c.getInt("id"); return v }

// UUID is the node uuid, also the placement resource provider uuid.
func (c *ComputeNode) UUID() string { return c.getString("uuid") }

// Host is the service host.
func (c *ComputeNode) Host() string { return c.getString("host") }

// HypervisorHostname is the node name, also the resource provider name.
func (c *ComputeNode) HypervisorHostname() string { return c.getString("hypervisor_hostname") }

// NewHVSpec builds an HVSpec (1.2) element for supported_hv_specs.
func NewHVSpec(arch, hvType, vmMode string) *Object {
	o := New("HVSpec", mustZed("HVSpec"))
	o.mustSet("arch", arch)
	o.mustSet("hv_type", hvType)
	o.mustSet("vm_mode", vmMode)
	return o
}

// ---- InstanceInfoCache ----

var infoCacheSchema = schema{"instance_uuid": str(), "network_info": nstr()}

// InstanceInfoCache is a view of a nova InstanceInfoCache (1.5). network_info travels as
// a JSON *string* holding the list of VIF dicts (NetworkModel.to_primitive).
type InstanceInfoCache struct{ *Object }

// AsInstanceInfoCache views o as an InstanceInfoCache.
func AsInstanceInfoCache(o *Object) (*InstanceInfoCache, error) {
	if err := view(o, "InstanceInfoCache", infoCacheSchema); err != nil {
		return nil, err
	}
	return &InstanceInfoCache{o}, nil
}

// NewInstanceInfoCache is InstanceInfoCache.new(ctx, uuid) with network_info assigned:
// changes ["instance_uuid","network_info"]. networkInfo is the JSON list of VIFs; nil
// stores None.
func NewInstanceInfoCache(instanceUUID string, networkInfo json.RawMessage) (*InstanceInfoCache, error) {
	c := &InstanceInfoCache{New("InstanceInfoCache", mustZed("InstanceInfoCache"))}
	c.mustSet("instance_uuid", instanceUUID)
	if err := c.SetNetworkInfo(networkInfo); err != nil {
		return nil, err
	}
	return c, nil
}

// InstanceUUID is the owning instance.
func (c *InstanceInfoCache) InstanceUUID() string { return c.getString("instance_uuid") }

// NetworkInfo returns the VIF list as JSON (decoded from the embedded string); nil when None.
func (c *InstanceInfoCache) NetworkInfo() (json.RawMessage, error) {
	s, ok := c.getOptString("network_info")
	if !ok {
		return nil, nil
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("InstanceInfoCache.network_info: %w: embedded string is not JSON", ErrFieldType)
	}
	return json.RawMessage(s), nil
}

// SetNetworkInfo stores the VIF list, encoded as a JSON string as nova requires;
// nil stores None.
func (c *InstanceInfoCache) SetNetworkInfo(nw json.RawMessage) error {
	if nw == nil {
		c.SetRaw("network_info", json.RawMessage("null"))
		return nil
	}
	if !json.Valid(nw) {
		return fmt.Errorf("set InstanceInfoCache.network_info: %w: not JSON", ErrFieldType)
	}
	return c.Set("network_info", string(nw))
}

// ---- Migration ----

var migrationSchema = schema{
	"id": integer(), "uuid": str(), "instance_uuid": nstr(), "status": nstr(),
	"migration_type": nstr(), "source_compute": nstr(), "dest_compute": nstr(),
	"source_node": nstr(), "dest_node": nstr(), "dest_host": nstr(),
	"old_instance_type_id": ninteger(), "new_instance_type_id": ninteger(),
}

// Migration is a view of a nova Migration (1.7).
type Migration struct{ *Object }

// AsMigration views o as a Migration.
func AsMigration(o *Object) (*Migration, error) {
	if err := view(o, "Migration", migrationSchema); err != nil {
		return nil, err
	}
	return &Migration{o}, nil
}

// ID is the database id.
func (m *Migration) ID() int64 { v, _ := m.getInt("id"); return v }

// UUID is the migration uuid (placement consumer of the source allocation).
func (m *Migration) UUID() string { return m.getString("uuid") }

// InstanceUUID is the migrating instance.
func (m *Migration) InstanceUUID() string { return m.getString("instance_uuid") }

// Status is e.g. "pre-migrating", "finished", "confirmed", "error".
func (m *Migration) Status() string { return m.getString("status") }

// MigrationType is "migration", "resize", "live-migration" or "evacuation".
func (m *Migration) MigrationType() string { return m.getString("migration_type") }

// SourceCompute is the source host.
func (m *Migration) SourceCompute() string { return m.getString("source_compute") }

// DestCompute is the destination host.
func (m *Migration) DestCompute() string { return m.getString("dest_compute") }

// SourceNode is the source node.
func (m *Migration) SourceNode() string { return m.getString("source_node") }

// DestNode is the destination node.
func (m *Migration) DestNode() string { return m.getString("dest_node") }

// SetStatus assigns status (errors_out_migration sets "error").
func (m *Migration) SetStatus(s string) { m.mustSet("status", s) }

// ---- InstanceFault ----

// FaultMessageMax is the DB column limit nova truncates fault messages to (UTF-8 bytes).
const FaultMessageMax = 255

// NewInstanceFault builds the object nova/compute/utils.py:add_instance_fault_from_exc
// creates: host, instance_uuid, message (truncated to 255 bytes on a UTF-8 boundary),
// code (the exception's kwargs code, default 500) and details (the traceback, only for
// code 500, else ""), all marked changed.
func NewInstanceFault(host, instanceUUID string, code int, message, traceback string) *Object {
	o := New("InstanceFault", mustZed("InstanceFault"))
	o.mustSet("host", host)
	o.mustSet("instance_uuid", instanceUUID)
	o.mustSet("message", TruncateUTF8(message, FaultMessageMax))
	o.mustSet("code", code)
	details := ""
	if code == 500 {
		details = traceback
	}
	o.mustSet("details", details)
	return o
}

// TruncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence
// (nova/utils.py:safe_truncate).
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	b := s[:n]
	for len(b) > 0 {
		r := b[len(b)-1]
		if r < 0x80 { // ASCII ends cleanly
			break
		}
		// Find the start of the last sequence and keep it only if complete.
		i := len(b) - 1
		for i > 0 && b[i]&0xC0 == 0x80 {
			i--
		}
		need := 1
		switch c := b[i]; {
		case c&0xE0 == 0xC0:
			need = 2
		case c&0xF0 == 0xE0:
			need = 3
		case c&0xF8 == 0xF0:
			need = 4
		}
		if len(b)-i >= need {
			break
		}
		b = b[:i]
	}
	return b
}

// ---- BlockDeviceMapping(List) ----

var bdmSchema = schema{
	"id": integer(), "uuid": str(), "instance_uuid": str(), "boot_index": ninteger(),
	"source_type": nstr(), "destination_type": nstr(), "device_name": nstr(), "device_type": nstr(),
	"disk_bus": nstr(), "image_id": nstr(), "volume_id": nstr(), "snapshot_id": nstr(),
	"volume_size": ninteger(), "delete_on_termination": boolean(), "guest_format": nstr(),
	"no_device": boolean(), "connection_info": nstr(), "tag": nstr(),
}

// BlockDeviceMapping is a view of a nova BlockDeviceMapping (1.21).
type BlockDeviceMapping struct{ *Object }

// AsBlockDeviceMapping views o as a BlockDeviceMapping.
func AsBlockDeviceMapping(o *Object) (*BlockDeviceMapping, error) {
	if err := view(o, "BlockDeviceMapping", bdmSchema); err != nil {
		return nil, err
	}
	return &BlockDeviceMapping{o}, nil
}

// SourceType is "image", "volume", "snapshot" or "blank".
func (b *BlockDeviceMapping) SourceType() string { return b.getString("source_type") }

// DestinationType is "local" or "volume".
func (b *BlockDeviceMapping) DestinationType() string { return b.getString("destination_type") }

// BootIndex is the boot order; ok is false when None (not bootable).
func (b *BlockDeviceMapping) BootIndex() (int64, bool) { return b.getInt("boot_index") }

// DeviceName is e.g. "/dev/sda" ("" when None).
func (b *BlockDeviceMapping) DeviceName() string { return b.getString("device_name") }

// ImageID is the source image for image-backed mappings.
func (b *BlockDeviceMapping) ImageID() string { return b.getString("image_id") }

// VolumeID is the cinder volume for volume mappings.
func (b *BlockDeviceMapping) VolumeID() string { return b.getString("volume_id") }

// SetDeviceName assigns device_name (set by the compute before spawn).
func (b *BlockDeviceMapping) SetDeviceName(n string) { b.setOptString("device_name", n) }

// BlockDeviceMappings views the elements of a BlockDeviceMappingList.
func BlockDeviceMappings(list *Object) ([]*BlockDeviceMapping, error) {
	return listOf(list, "BlockDeviceMappingList", AsBlockDeviceMapping)
}

// listOf views each element of an object list of class listClass with as.
func listOf[T any](list *Object, listClass string, as func(*Object) (T, error)) ([]T, error) {
	if err := list.Expect(listClass); err != nil {
		return nil, err
	}
	elems, err := list.Objects()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(elems))
	for i, e := range elems {
		v, err := as(e)
		if err != nil {
			return nil, fmt.Errorf("%s element %d: %w", listClass, i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Instances views the elements of an InstanceList.
func Instances(list *Object) ([]*Instance, error) { return listOf(list, "InstanceList", AsInstance) }

// Migrations views the elements of a MigrationList.
func Migrations(list *Object) ([]*Migration, error) {
	return listOf(list, "MigrationList", AsMigration)
}

// ComputeNodes views the elements of a ComputeNodeList.
func ComputeNodes(list *Object) ([]*ComputeNode, error) {
	return listOf(list, "ComputeNodeList", AsComputeNode)
}

// ---- NetworkRequest(List) ----

var networkRequestSchema = schema{
	"network_id": nstr(), "port_id": nstr(), "address": nstr(), "tag": nstr(),
	"pci_request_id": nstr(), "arq_uuid": nstr(), "device_profile": nstr(),
}

// NetworkRequest is a view of a nova NetworkRequest (1.3).
type NetworkRequest struct{ *Object }

// AsNetworkRequest views o as a NetworkRequest.
func AsNetworkRequest(o *Object) (*NetworkRequest, error) {
	if err := view(o, "NetworkRequest", networkRequestSchema); err != nil {
		return nil, err
	}
	return &NetworkRequest{o}, nil
}

// NetworkID is the requested network ("none" / "auto" are special; "" when None).
func (n *NetworkRequest) NetworkID() string { return n.getString("network_id") }

// PortID is the pre-created port ("" when None).
func (n *NetworkRequest) PortID() string { return n.getString("port_id") }

// Address is the requested fixed IP ("" when None).
func (n *NetworkRequest) Address() string { return n.getString("address") }

// Tag is the device tag ("" when None).
func (n *NetworkRequest) Tag() string { return n.getString("tag") }

// NetworkRequests views the elements of a NetworkRequestList.
func NetworkRequests(list *Object) ([]*NetworkRequest, error) {
	return listOf(list, "NetworkRequestList", AsNetworkRequest)
}

// NoAllocate reports NetworkRequestList.no_allocate: a single request for network "none".
func NoAllocate(reqs []*NetworkRequest) bool {
	return len(reqs) == 1 && reqs[0].NetworkID() == "none"
}

// ---- RequestSpec ----

var requestSpecSchema = schema{
	"instance_uuid": str(), "project_id": nstr(), "user_id": nstr(), "availability_zone": nstr(),
	"flavor": obj("Flavor"), "image": nobj("ImageMeta"), "num_instances": integer(),
	"is_bfv": boolean(),
}

// RequestSpec is a view of a nova RequestSpec (1.14), as passed to build_and_run_instance.
type RequestSpec struct{ *Object }

// AsRequestSpec views o as a RequestSpec.
func AsRequestSpec(o *Object) (*RequestSpec, error) {
	if err := view(o, "RequestSpec", requestSpecSchema); err != nil {
		return nil, err
	}
	return &RequestSpec{o}, nil
}

// InstanceUUID is the instance being scheduled.
func (r *RequestSpec) InstanceUUID() string { return r.getString("instance_uuid") }

// Flavor is the requested flavor; nil when not set.
func (r *RequestSpec) Flavor() (*Flavor, error) { return flavorField(r.Object, "flavor") }

// Image is the requested image; nil when None or not set.
func (r *RequestSpec) Image() (*ImageMeta, error) {
	n, err := nested(r.Object, "image", "ImageMeta", imageMetaSchema)
	if err != nil || n == nil {
		return nil, err
	}
	return &ImageMeta{n}, nil
}

// ---- InstanceExternalEvent ----

var externalEventSchema = schema{"instance_uuid": str(), "name": str(), "status": str(), "tag": nstr(), "data": dictStr()}

// InstanceExternalEvent is a view of a nova InstanceExternalEvent (1.5), the elements of
// external_instance_event's "events" argument.
type InstanceExternalEvent struct{ *Object }

// AsInstanceExternalEvent views o as an InstanceExternalEvent.
func AsInstanceExternalEvent(o *Object) (*InstanceExternalEvent, error) {
	if err := view(o, "InstanceExternalEvent", externalEventSchema); err != nil {
		return nil, err
	}
	return &InstanceExternalEvent{o}, nil
}

// InstanceUUID is the instance the event is for.
func (e *InstanceExternalEvent) InstanceUUID() string { return e.getString("instance_uuid") }

// EventName is e.g. "network-vif-plugged".
func (e *InstanceExternalEvent) EventName() string { return e.getString("name") }

// Status is "completed", "failed" or "in-progress".
func (e *InstanceExternalEvent) Status() string { return e.getString("status") }

// Tag is the event tag, usually a port id ("" when None).
func (e *InstanceExternalEvent) Tag() string { return e.getString("tag") }

// Key is nova's event key: "name-tag", or just name without a tag.
func (e *InstanceExternalEvent) Key() string {
	if t := e.Tag(); t != "" {
		return e.EventName() + "-" + t
	}
	return e.EventName()
}

// ---- InstanceActionEvent (class-method arguments) ----

// ActionEvent names one wrap_instance_event event: the instance and "compute_<method>"
// (e.g. "compute__do_build_and_run_instance").
type ActionEvent struct {
	InstanceUUID string
	Name         string
}

// StartArgs returns the args/kwargs of InstanceActionEvent.event_start as nova-compute
// sends them: args [uuid, name], kwargs {want_result: false, host}.
func (e ActionEvent) StartArgs(host string) ([]any, map[string]any) {
	return []any{e.InstanceUUID, e.Name}, map[string]any{"want_result": false, "host": host}
}

// FinishArgs returns the args/kwargs of InstanceActionEvent.event_finish_with_failure:
// exc_val/exc_tb are None on success (result "Success"), strings on failure ("Error").
func (e ActionEvent) FinishArgs(excVal, excTB *string) ([]any, map[string]any) {
	return []any{e.InstanceUUID, e.Name}, map[string]any{"exc_val": excVal, "exc_tb": excTB, "want_result": false}
}

// mustZed returns the Zed version of a class known to be in the registry.
func mustZed(name string) string {
	v, ok := ZedVersion(name)
	if !ok {
		panic("objects: " + name + " missing from the Zed registry")
	}
	return v
}
