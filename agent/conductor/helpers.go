package conductor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// Typed helpers for the remotable calls a compute makes (protocols.md §4.3–§4.5). Each
// sends exactly the args/kwargs the Python nova-compute sends (checked against the
// recorded traffic in the tests).

// decodeResult decodes a class action result that is an object of class, or returns
// ErrNotFound for None.
func decodeResult(res json.RawMessage, class string) (*objects.Object, error) {
	if len(res) == 0 || string(res) == "null" {
		return nil, fmt.Errorf("%s: %w", class, ErrNotFound)
	}
	o, err := objects.ObjectFrom(res)
	if err != nil {
		return nil, fmt.Errorf("%s result: %w: %w", class, ErrBadReply, err)
	}
	if err := o.Expect(class); err != nil {
		return nil, fmt.Errorf("%s result: %w: %w", class, ErrBadReply, err)
	}
	return o, nil
}

// ServiceGetMinimumVersion is Service.get_minimum_version(ctx, binary): the lowest
// service version among the binary's live services (64 in an all-Zed cloud).
func (c *Client) ServiceGetMinimumVersion(ctx context.Context, rctx map[string]any, binary string) (int, error) {
	res, err := c.ClassAction(ctx, rctx, "Service", "get_minimum_version", []any{binary}, nil)
	if err != nil {
		return 0, err
	}
	var v int
	if err := json.Unmarshal(res, &v); err != nil {
		return 0, fmt.Errorf("Service.get_minimum_version result %.100s: %w", res, ErrBadReply)
	}
	return v, nil
}

// ServiceGetByHostAndBinary is Service.get_by_host_and_binary; ErrNotFound when the
// conductor answers None (first start).
func (c *Client) ServiceGetByHostAndBinary(ctx context.Context, rctx map[string]any, host, binary string) (*objects.Service, error) {
	res, err := c.ClassAction(ctx, rctx, "Service", "get_by_host_and_binary", []any{host, binary}, nil)
	if err != nil {
		return nil, err
	}
	return serviceResult(res, "Service.get_by_host_and_binary")
}

// ServiceGetByComputeHost is Service.get_by_compute_host(ctx, host) (ServiceNotFound →
// ErrNotFound); the resource tracker reads it to report COMPUTE_STATUS_DISABLED.
func (c *Client) ServiceGetByComputeHost(ctx context.Context, rctx map[string]any, host string) (*objects.Service, error) {
	res, err := c.ClassAction(ctx, rctx, "Service", "get_by_compute_host", []any{host}, nil)
	if err != nil {
		return nil, err
	}
	return serviceResult(res, "Service.get_by_compute_host")
}

func serviceResult(res json.RawMessage, op string) (*objects.Service, error) {
	o, err := decodeResult(res, "Service")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	s, err := objects.AsService(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, ErrBadReply, err)
	}
	return s, nil
}

// ServiceCreate is Service.create(): svc (normally objects.NewService) gets its id, uuid
// and timestamps from the reply. ServiceBinaryExists/ServiceTopicExists → ErrConflict
// (another process registered first: fetch it again).
func (c *Client) ServiceCreate(ctx context.Context, rctx map[string]any, svc *objects.Service) error {
	_, err := c.ObjectAction(ctx, rctx, svc.Object, "create", nil, nil)
	return err
}

// ServiceSave is Service.save(): sends the changed fields, applies the reply.
func (c *Client) ServiceSave(ctx context.Context, rctx map[string]any, svc *objects.Service) error {
	_, err := c.ObjectAction(ctx, rctx, svc.Object, "save", nil, nil)
	return err
}

// ServiceHeartbeat is the servicegroup db driver's report: report_count += 1 (marked
// changed — without that change the DB does not refresh last_seen_up) and save. The
// reply carries the operator's current disabled/forced_down flags. On failure the count
// stays incremented, like nova: the next beat still moves it forward.
func (c *Client) ServiceHeartbeat(ctx context.Context, rctx map[string]any, svc *objects.Service) error {
	svc.IncrementReportCount()
	if err := c.ServiceSave(ctx, rctx, svc); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// ComputeNodeGetByHostAndNodename is ComputeNode.get_by_host_and_nodename
// (ComputeHostNotFound → ErrNotFound, expected on first start).
func (c *Client) ComputeNodeGetByHostAndNodename(ctx context.Context, rctx map[string]any, host, node string) (*objects.ComputeNode, error) {
	res, err := c.ClassAction(ctx, rctx, "ComputeNode", "get_by_host_and_nodename", []any{host, node}, nil)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "ComputeNode")
	if err != nil {
		return nil, err
	}
	cn, err := objects.AsComputeNode(o)
	if err != nil {
		return nil, fmt.Errorf("ComputeNode.get_by_host_and_nodename: %w: %w", ErrBadReply, err)
	}
	return cn, nil
}

// ComputeNodeListGetAllByHost is ComputeNodeList.get_all_by_host(ctx, host,
// use_slave=True) (ComputeHostNotFound → ErrNotFound).
func (c *Client) ComputeNodeListGetAllByHost(ctx context.Context, rctx map[string]any, host string) ([]*objects.ComputeNode, error) {
	res, err := c.ClassAction(ctx, rctx, "ComputeNodeList", "get_all_by_host", []any{host}, map[string]any{"use_slave": true})
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "ComputeNodeList")
	if err != nil {
		return nil, err
	}
	return wrapList(objects.ComputeNodes(o))
}

// ComputeNodeCreate is ComputeNode.create(); the reply sets id, uuid (if not given),
// timestamps and defaults.
func (c *Client) ComputeNodeCreate(ctx context.Context, rctx map[string]any, cn *objects.ComputeNode) error {
	_, err := c.ObjectAction(ctx, rctx, cn.Object, "create", nil, nil)
	return err
}

// ComputeNodeSave is ComputeNode.save().
func (c *Client) ComputeNodeSave(ctx context.Context, rctx map[string]any, cn *objects.ComputeNode) error {
	_, err := c.ObjectAction(ctx, rctx, cn.Object, "save", nil, nil)
	return err
}

// InstanceGetByUUID is Instance.get_by_uuid(ctx, uuid=..., expected_attrs=[...])
// (InstanceNotFound → ErrNotFound).
func (c *Client) InstanceGetByUUID(ctx context.Context, rctx map[string]any, uuid string, expectedAttrs []string) (*objects.Instance, error) {
	kw := map[string]any{"uuid": uuid}
	if expectedAttrs != nil {
		kw["expected_attrs"] = expectedAttrs
	}
	res, err := c.ClassAction(ctx, rctx, "Instance", "get_by_uuid", nil, kw)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "Instance")
	if err != nil {
		return nil, err
	}
	inst, err := objects.AsInstance(o)
	if err != nil {
		return nil, fmt.Errorf("Instance.get_by_uuid: %w: %w", ErrBadReply, err)
	}
	return inst, nil
}

// SaveOptions are Instance.save's guards. A nil slice means "do not check"; to require
// that the current state is None include objects.TaskNone (sent as null).
type SaveOptions struct {
	// ExpectedTaskState: the DB task_state must be one of these, else the conductor raises
	// UnexpectedTaskStateError (ErrUnexpectedState) or, if it is "deleting",
	// UnexpectedDeletingTaskStateError (ErrInstanceDeleting).
	ExpectedTaskState []objects.TaskState
	// ExpectedVMState: the DB vm_state must be one of these.
	ExpectedVMState []objects.VMState
}

// kwargs encodes the options as nova does: lists, None inside them as null.
func (o SaveOptions) kwargs() map[string]any {
	kw := map[string]any{}
	if o.ExpectedTaskState != nil {
		l := make([]any, len(o.ExpectedTaskState))
		for i, s := range o.ExpectedTaskState {
			l[i] = s.Primitive()
		}
		kw["expected_task_state"] = l
	}
	if o.ExpectedVMState != nil {
		l := make([]any, len(o.ExpectedVMState))
		for i, s := range o.ExpectedVMState {
			l[i] = string(s)
		}
		kw["expected_vm_state"] = l
	}
	return kw
}

// InstanceSave is Instance.save(expected_task_state=..., expected_vm_state=...). The
// reply (the whole reloaded row for changed attributes) is applied to inst.
func (c *Client) InstanceSave(ctx context.Context, rctx map[string]any, inst *objects.Instance, opts SaveOptions) error {
	_, err := c.ObjectAction(ctx, rctx, inst.Object, "save", nil, opts.kwargs())
	return err
}

// InstanceDestroy is Instance.destroy(): soft-deletes the row (the compute's last step of
// terminate_instance).
func (c *Client) InstanceDestroy(ctx context.Context, rctx map[string]any, inst *objects.Instance) error {
	_, err := c.ObjectAction(ctx, rctx, inst.Object, "destroy", nil, nil)
	return err
}

// InstanceListGetByHost is InstanceList.get_by_host(ctx, host, expected_attrs=[...]).
func (c *Client) InstanceListGetByHost(ctx context.Context, rctx map[string]any, host string, expectedAttrs []string) ([]*objects.Instance, error) {
	kw := map[string]any{}
	if expectedAttrs != nil {
		kw["expected_attrs"] = expectedAttrs
	}
	res, err := c.ClassAction(ctx, rctx, "InstanceList", "get_by_host", []any{host}, kw)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "InstanceList")
	if err != nil {
		return nil, err
	}
	return wrapList(objects.Instances(o))
}

// InstanceListGetByHostAndNode is InstanceList.get_by_host_and_node(ctx, host, node,
// expected_attrs=[...]) (what the resource tracker reads).
func (c *Client) InstanceListGetByHostAndNode(ctx context.Context, rctx map[string]any, host, node string, expectedAttrs []string) ([]*objects.Instance, error) {
	kw := map[string]any{}
	if expectedAttrs != nil {
		kw["expected_attrs"] = expectedAttrs
	}
	res, err := c.ClassAction(ctx, rctx, "InstanceList", "get_by_host_and_node", []any{host, node}, kw)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "InstanceList")
	if err != nil {
		return nil, err
	}
	return wrapList(objects.Instances(o))
}

// EventStart is InstanceActionEvent.event_start(ctx, uuid, name, want_result=False,
// host=host). rctx must be the incoming request's context (same request_id).
func (c *Client) EventStart(ctx context.Context, rctx map[string]any, ev objects.ActionEvent, host string) error {
	args, kw := ev.StartArgs(host)
	_, err := c.ClassAction(ctx, rctx, "InstanceActionEvent", "event_start", args, kw)
	return err
}

// EventFinishWithFailure is InstanceActionEvent.event_finish_with_failure: excVal and
// excTB nil record "Success"; strings record "Error" with the message and traceback.
func (c *Client) EventFinishWithFailure(ctx context.Context, rctx map[string]any, ev objects.ActionEvent, excVal, excTB *string) error {
	args, kw := ev.FinishArgs(excVal, excTB)
	_, err := c.ClassAction(ctx, rctx, "InstanceActionEvent", "event_finish_with_failure", args, kw)
	return err
}

// EventFinish is InstanceActionEvent.event_finish(ctx, uuid, name, want_result=False):
// a successful finish.
func (c *Client) EventFinish(ctx context.Context, rctx map[string]any, ev objects.ActionEvent) error {
	_, err := c.ClassAction(ctx, rctx, "InstanceActionEvent", "event_finish",
		[]any{ev.InstanceUUID, ev.Name}, map[string]any{"want_result": false})
	return err
}

// InfoCacheSave is InstanceInfoCache.save() (normally on objects.NewInstanceInfoCache).
func (c *Client) InfoCacheSave(ctx context.Context, rctx map[string]any, cache *objects.InstanceInfoCache) error {
	_, err := c.ObjectAction(ctx, rctx, cache.Object, "save", nil, nil)
	return err
}

// InstanceFaultCreate is InstanceFault.create() on a fault built by
// objects.NewInstanceFault (what wrap_instance_fault records).
func (c *Client) InstanceFaultCreate(ctx context.Context, rctx map[string]any, fault *objects.Object) error {
	if err := fault.Expect("InstanceFault"); err != nil {
		return fmt.Errorf("create fault: %w", err)
	}
	_, err := c.ObjectAction(ctx, rctx, fault, "create", nil, nil)
	return err
}

// MigrationListGetInProgressAndError is MigrationList.get_in_progress_and_error(ctx,
// host, node): migrations the resource tracker must account for.
func (c *Client) MigrationListGetInProgressAndError(ctx context.Context, rctx map[string]any, host, node string) ([]*objects.Migration, error) {
	res, err := c.ClassAction(ctx, rctx, "MigrationList", "get_in_progress_and_error", []any{host, node}, nil)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "MigrationList")
	if err != nil {
		return nil, err
	}
	return wrapList(objects.Migrations(o))
}

// MigrationSave is Migration.save().
func (c *Client) MigrationSave(ctx context.Context, rctx map[string]any, m *objects.Migration) error {
	_, err := c.ObjectAction(ctx, rctx, m.Object, "save", nil, nil)
	return err
}

// BDMListGetByInstanceUUID is BlockDeviceMappingList.get_by_instance_uuid(ctx, uuid).
func (c *Client) BDMListGetByInstanceUUID(ctx context.Context, rctx map[string]any, uuid string) ([]*objects.BlockDeviceMapping, error) {
	res, err := c.ClassAction(ctx, rctx, "BlockDeviceMappingList", "get_by_instance_uuid", []any{uuid}, nil)
	if err != nil {
		return nil, err
	}
	o, err := decodeResult(res, "BlockDeviceMappingList")
	if err != nil {
		return nil, err
	}
	return wrapList(objects.BlockDeviceMappings(o))
}

func wrapList[T any](l []T, err error) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	return l, nil
}
