package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// ComputeAPIVersion is the compute RPC API version Zed's ComputeManager serves.
const ComputeAPIVersion = "6.1"

// decorators records which of nova's ComputeManager decorators wrap a method, because they
// decide what the rest of nova sees when the method fails: the instance fault, the action event
// and whether task_state is reset (nova/compute/manager.py).
type decorators struct {
	revertsTaskState bool // reverts_task_state
	event            bool // wrap_instance_event
	fault            bool // wrap_instance_fault
	migration        bool // errors_out_migration
}

// computeMethod describes one method of the compute RPC API 6.x: its wire arguments (the
// keyword names of nova/compute/rpcapi.py; required ones are dispatched as Python would, so a
// missing one is the same TypeError) and its decorators.
type computeMethod struct {
	required []string
	optional []string
	dec      decorators
}

var (
	decInstance  = decorators{revertsTaskState: true, event: true, fault: true}
	decEventOnly = decorators{event: true, fault: true}
	decMigration = decorators{revertsTaskState: true, event: true, fault: true, migration: true}
	decFault     = decorators{fault: true}
)

// computeMethods is the compute RPC API 6.1 as nova-compute serves it. Generated from nova 26.2.2's
// manager.py signatures and decorators; see protocols.md §3.3.
var computeMethods = map[string]computeMethod{
	"add_fixed_ip_to_instance":                      {required: []string{"network_id", "instance"}, dec: decFault},
	"attach_interface":                              {required: []string{"instance", "network_id", "port_id", "requested_ip", "tag"}, dec: decEventOnly},
	"attach_volume":                                 {required: []string{"instance", "bdm"}, dec: decEventOnly},
	"backup_instance":                               {required: []string{"image_id", "instance", "backup_type", "rotation"}, dec: decInstance},
	"build_and_run_instance":                        {required: []string{"instance", "image", "request_spec", "filter_properties", "accel_uuids"}, optional: []string{"admin_password", "injected_files", "requested_networks", "security_groups", "block_device_mapping", "node", "limits", "host_list"}, dec: decorators{revertsTaskState: true, fault: true}},
	"cache_images":                                  {required: []string{"image_ids"}},
	"check_can_live_migrate_destination":            {required: []string{"instance", "block_migration", "disk_over_commit", "migration", "limits"}, dec: decEventOnly},
	"check_can_live_migrate_source":                 {required: []string{"instance", "dest_check_data"}, dec: decEventOnly},
	"check_instance_shared_storage":                 {required: []string{"data"}},
	"confirm_resize":                                {required: []string{"instance", "migration"}, dec: decorators{event: true, fault: true, migration: true}},
	"confirm_snapshot_based_resize_at_source":       {required: []string{"instance", "migration"}, dec: decorators{event: true, fault: true, migration: true}},
	"detach_interface":                              {required: []string{"instance", "port_id"}, dec: decEventOnly},
	"detach_volume":                                 {required: []string{"volume_id", "instance", "attachment_id"}, dec: decEventOnly},
	"drop_move_claim_at_destination":                {required: []string{"instance"}, dec: decFault},
	"external_instance_event":                       {required: []string{"instances", "events"}},
	"finish_resize":                                 {required: []string{"disk_info", "image", "instance", "migration", "request_spec"}, dec: decMigration},
	"finish_revert_resize":                          {required: []string{"instance", "migration", "request_spec"}, dec: decMigration},
	"finish_revert_snapshot_based_resize_at_source": {required: []string{"instance", "migration"}, dec: decMigration},
	"finish_snapshot_based_resize_at_dest":          {required: []string{"instance", "migration", "snapshot_id"}, dec: decMigration},
	"get_console_output":                            {required: []string{"instance", "tail_length"}, dec: decFault},
	"get_diagnostics":                               {required: []string{"instance"}, dec: decFault},
	"get_host_uptime":                               {},
	"get_instance_diagnostics":                      {required: []string{"instance"}, dec: decFault},
	"get_mks_console":                               {required: []string{"console_type", "instance"}, dec: decFault},
	"get_rdp_console":                               {required: []string{"console_type", "instance"}, dec: decFault},
	"get_serial_console":                            {required: []string{"console_type", "instance"}, dec: decFault},
	"get_spice_console":                             {required: []string{"console_type", "instance"}, dec: decFault},
	"get_vnc_console":                               {required: []string{"console_type", "instance"}, dec: decFault},
	"host_maintenance_mode":                         {required: []string{"host", "mode"}},
	"host_power_action":                             {required: []string{"action"}},
	"inject_network_info":                           {required: []string{"instance"}, dec: decFault},
	"live_migration":                                {required: []string{"dest", "instance", "block_migration", "migration", "migrate_data"}, dec: decorators{event: true, fault: true, migration: true}},
	"live_migration_abort":                          {required: []string{"instance", "migration_id"}, dec: decEventOnly},
	"live_migration_force_complete":                 {required: []string{"instance"}, dec: decEventOnly},
	"pause_instance":                                {required: []string{"instance"}, dec: decInstance},
	"post_live_migration_at_destination":            {required: []string{"instance", "block_migration"}, dec: decEventOnly},
	"pre_live_migration":                            {required: []string{"instance", "disk", "migrate_data"}, dec: decEventOnly},
	"prep_resize":                                   {required: []string{"image", "instance", "flavor", "request_spec", "filter_properties", "node", "clean_shutdown", "migration", "host_list"}, dec: decInstance},
	"prep_snapshot_based_resize_at_dest":            {required: []string{"instance", "flavor", "nodename", "migration", "limits"}, dec: decEventOnly},
	"prep_snapshot_based_resize_at_source":          {required: []string{"instance", "migration"}, optional: []string{"snapshot_id"}, dec: decMigration},
	"quiesce_instance":                              {required: []string{"instance"}},
	"reboot_instance":                               {required: []string{"instance", "block_device_info", "reboot_type"}, dec: decInstance},
	"rebuild_instance":                              {required: []string{"instance", "orig_image_ref", "image_ref", "injected_files", "new_pass", "orig_sys_metadata", "bdms", "recreate", "on_shared_storage", "preserve_ephemeral", "migration", "scheduled_node", "limits", "request_spec", "accel_uuids"}, optional: []string{"reimage_boot_volume"}, dec: decInstance},
	"remove_fixed_ip_from_instance":                 {required: []string{"address", "instance"}, dec: decFault},
	"remove_volume_connection":                      {required: []string{"volume_id", "instance"}},
	"rescue_instance":                               {required: []string{"instance", "rescue_password", "rescue_image_ref", "clean_shutdown"}, dec: decInstance},
	"reserve_block_device_name":                     {required: []string{"instance", "device", "volume_id", "disk_bus", "device_type", "tag", "multiattach"}, dec: decorators{revertsTaskState: true, fault: true}},
	"resize_instance":                               {required: []string{"instance", "image", "migration", "flavor", "clean_shutdown", "request_spec"}, dec: decInstance},
	"restore_instance":                              {required: []string{"instance"}, dec: decInstance},
	"resume_instance":                               {required: []string{"instance"}, dec: decInstance},
	"revert_resize":                                 {required: []string{"instance", "migration", "request_spec"}, dec: decMigration},
	"revert_snapshot_based_resize_at_dest":          {required: []string{"instance", "migration"}, dec: decMigration},
	"rollback_live_migration_at_destination":        {required: []string{"instance", "destroy_disks", "migrate_data"}, dec: decEventOnly},
	"set_admin_password":                            {required: []string{"instance", "new_pass"}, dec: decInstance},
	"set_host_enabled":                              {required: []string{"enabled"}},
	"shelve_instance":                               {required: []string{"instance", "image_id", "clean_shutdown", "accel_uuids"}, dec: decInstance},
	"shelve_offload_instance":                       {required: []string{"instance", "clean_shutdown", "accel_uuids"}, dec: decInstance},
	"snapshot_instance":                             {required: []string{"image_id", "instance"}, dec: decInstance},
	"soft_delete_instance":                          {required: []string{"instance"}, dec: decInstance},
	"start_instance":                                {required: []string{"instance"}, dec: decInstance},
	"stop_instance":                                 {required: []string{"instance", "clean_shutdown"}, dec: decInstance},
	"suspend_instance":                              {required: []string{"instance"}, dec: decInstance},
	"swap_volume":                                   {required: []string{"old_volume_id", "new_volume_id", "instance", "new_attachment_id"}, dec: decEventOnly},
	"terminate_instance":                            {required: []string{"instance", "bdms"}, dec: decInstance},
	"trigger_crash_dump":                            {required: []string{"instance"}, dec: decEventOnly},
	"unpause_instance":                              {required: []string{"instance"}, dec: decInstance},
	"unquiesce_instance":                            {required: []string{"instance"}, optional: []string{"mapping"}},
	"unrescue_instance":                             {required: []string{"instance"}, dec: decInstance},
	"unshelve_instance":                             {required: []string{"instance", "image", "filter_properties", "node", "request_spec", "accel_uuids"}, dec: decInstance},
	"validate_console_port":                         {required: []string{"instance", "port", "console_type"}, dec: decFault},
	"volume_snapshot_create":                        {required: []string{"instance", "volume_id", "create_info"}},
	"volume_snapshot_delete":                        {required: []string{"instance", "volume_id", "snapshot_id", "delete_info"}},
}

// OpHandler implements one compute method. It receives the decoded request; for methods that
// carry an instance, the decoded Instance is passed too (nil otherwise).
type OpHandler func(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error)

// checkArgs reproduces the TypeError Python raises when a method is called with missing or
// unexpected keyword arguments, so a malformed message gets the answer nova-compute would give.
func checkArgs(method string, m computeMethod, args map[string]json.RawMessage) error {
	var missing []string
	for _, a := range m.required {
		if _, ok := args[a]; !ok {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		quoted := make([]string, len(missing))
		for i, a := range missing {
			quoted[i] = "'" + a + "'"
		}
		noun := "argument"
		if len(missing) > 1 {
			noun = "arguments"
		}
		list := strings.Join(quoted, ", ")
		if len(quoted) > 1 {
			list = strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
		}
		msg := fmt.Sprintf("%s() missing %d required positional %s: %s", method, len(missing), noun, list)
		return &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "TypeError", Message: msg}
	}
	known := map[string]bool{}
	for _, a := range m.required {
		known[a] = true
	}
	for _, a := range m.optional {
		known[a] = true
	}
	var extra []string
	for a := range args {
		if !known[a] {
			extra = append(extra, a)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		msg := fmt.Sprintf("%s() got an unexpected keyword argument '%s'", method, extra[0])
		return &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "TypeError", Message: msg}
	}
	return nil
}

// notSupported is the exception nova's base ComputeDriver raises for an operation the driver
// does not implement; nova-api maps it to HTTP 501 for calls.
func notSupported(method string) error {
	msg := fmt.Sprintf("%s is not supported by nova-container-agent", method)
	return &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "NotImplementedError", Message: msg}
}

// novaFailure builds a nova.exception failure that nova callers re-create as the real class.
func novaFailure(class, msg string, code int, kwargs map[string]any) *rpc.Failure {
	kw := map[string]any{"code": code}
	for k, v := range kwargs {
		kw[k] = v
	}
	return &rpc.Failure{Module: rpc.ModuleNova, Class: class, Message: msg, Kwargs: kw}
}
