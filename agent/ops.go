package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

// instanceOps maps compute RPC methods to their implementations. build_and_run_instance is
// always served: without a lifecycle it fails the build cleanly instead of leaving it in BUILD.
// The other operations need the container driver; without one they answer as unsupported.
func (m *Manager) instanceOps() map[string]OpHandler {
	ops := map[string]OpHandler{
		"build_and_run_instance": m.opBuildAndRunInstance,
	}
	if m.lc == nil {
		return ops
	}
	for name, h := range map[string]OpHandler{
		"terminate_instance":       m.opTerminate,
		"stop_instance":            m.opStop,
		"start_instance":           m.opStart,
		"reboot_instance":          m.opReboot,
		"pause_instance":           m.opPause,
		"unpause_instance":         m.opUnpause,
		"suspend_instance":         m.opSuspend,
		"resume_instance":          m.opResume,
		"get_console_output":       m.opConsoleOutput,
		"rebuild_instance":         m.opRebuild,
		"get_diagnostics":          m.opDiagnostics,
		"snapshot_instance":        m.opSnapshot,
		"set_admin_password":       m.opSetAdminPassword,
		"get_instance_diagnostics": m.opInstanceDiagnostics,
		// Resize and cold migration on this same host (ops_resize.go).
		"prep_resize":          m.opPrepResize,
		"resize_instance":      m.opResizeInstance,
		"finish_resize":        m.opFinishResize,
		"confirm_resize":       m.opConfirmResize,
		"revert_resize":        m.opRevertResize,
		"finish_revert_resize": m.opFinishRevertResize,
	} {
		ops[name] = h
	}
	return ops
}

func tasks(ts ...objects.TaskState) conductor.SaveOptions {
	return conductor.SaveOptions{ExpectedTaskState: ts}
}

// powerState reads the container's power state as nova's power_state integer.
func (m *Manager) powerState(ctx context.Context, uuid string) (objects.PowerState, error) {
	st, err := m.lc.Driver.GetState(ctx, uuid)
	if err != nil {
		return 0, fmt.Errorf("read power state of %s: %w", uuid, err)
	}
	return objects.PowerState(st.Power), nil
}

// replug returns the plug step for restarts: the instance's ports from its info cache, plugged
// again if the sandbox (and so its namespace) had to be recreated. Ports are already active in
// neutron, so nothing waits for network-vif-plugged.
func (m *Manager) replug(inst *objects.Instance) driver.PlugFunc {
	return func(ctx context.Context, netns string) error {
		vifs, err := instanceVIFs(inst)
		if err != nil {
			return fmt.Errorf("read network info of %s: %w", inst.UUID(), err)
		}
		return m.lc.Plugger.Plug(ctx, inst.UUID(), netns, vifs)
	}
}

// opTerminate is terminate_instance: destroy the container and its sandbox, release ports and
// allocations, mark the instance deleted and destroy the record (_delete_instance).
func (m *Manager) opTerminate(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	rctx := map[string]any(req.Context)
	if err := m.lc.Driver.Destroy(ctx, uuid); err != nil {
		return nil, fmt.Errorf("destroy container of %s: %w", uuid, err)
	}
	vifs, err := instanceVIFs(inst)
	if err != nil {
		m.log.Warn("read network info before delete; relying on neutron's port list", "instance", uuid, "err", err)
	}
	if err := m.lc.Plugger.Unplug(ctx, uuid, vifs); err != nil {
		m.log.Warn("unplug ports", "instance", uuid, "err", err)
	}
	uctx := cloud.WithUserToken(ctx, stringOf(rctx["auth_token"]))
	net := &networkAPI{neutron: m.lc.Neutron, host: m.opts.Host, bridge: m.lc.Bridge}
	if err := net.deallocate(uctx, uuid, vifs); err != nil {
		return nil, fmt.Errorf("release ports of %s: %w", uuid, err)
	}
	if _, err := m.cond.ClassAction(ctx, rctx, "VirtualInterface", "delete_by_instance_uuid", []any{uuid}, nil); err != nil {
		m.log.Warn("delete virtual interfaces", "instance", uuid, "err", err)
	}
	inst.SetVMState(objects.VMDeleted)
	inst.SetTaskState(objects.TaskNone)
	inst.SetPowerState(objects.PowerNoState)
	inst.SetTerminatedAt(time.Now())
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return nil, fmt.Errorf("mark %s deleted: %w", uuid, err)
	}
	if _, err := m.placement.DeleteConsumerAllocations(ctx, uuid); err != nil {
		return nil, fmt.Errorf("delete allocations of %s: %w", uuid, err)
	}
	if _, err := m.cond.ClassAction(ctx, rctx, "ConsoleAuthToken", "clean_console_auths_for_instance", []any{uuid}, nil); err != nil {
		m.log.Debug("clean console auth tokens", "instance", uuid, "err", err)
	}
	if err := m.cond.InstanceDestroy(ctx, rctx, inst); err != nil && !errors.Is(err, conductor.ErrNotFound) {
		return nil, fmt.Errorf("destroy record of %s: %w", uuid, err)
	}
	m.builds.Add(1)
	go func() {
		defer m.builds.Done()
		if err := m.UpdateAvailableResource(context.WithoutCancel(ctx)); err != nil {
			m.log.Warn("resource audit after delete", "err", err)
		}
	}()
	return nil, nil
}

func boolArg(req *rpc.Request, name string, def bool) bool {
	raw, ok := req.Args[name]
	if !ok {
		return def
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return def
	}
	return b
}

// opStop is stop_instance: a clean shutdown (SIGRTMIN+3 to systemd) within shutdown_timeout,
// then a hard stop; clean_shutdown=false stops at once.
func (m *Manager) opStop(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	timeout := m.lc.ShutdownTimeout
	if !boolArg(req, "clean_shutdown", true) {
		timeout = 0
	}
	expected := []objects.TaskState{objects.TaskPoweringOff}
	if p, err := m.powerState(ctx, uuid); err == nil && p != objects.PowerRunning {
		expected = append(expected, objects.TaskNone)
	}
	if err := m.lc.Driver.PowerOff(ctx, uuid, timeout); err != nil {
		return nil, fmt.Errorf("power off %s: %w", uuid, err)
	}
	return nil, m.settle(ctx, map[string]any(req.Context), inst, objects.VMStopped, expected...)
}

func (m *Manager) opStart(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	if err := m.lc.Driver.PowerOn(ctx, uuid, m.replug(inst)); err != nil {
		return nil, fmt.Errorf("power on %s: %w", uuid, err)
	}
	return nil, m.settle(ctx, map[string]any(req.Context), inst, objects.VMActive, objects.TaskPoweringOn)
}

// opReboot is reboot_instance with nova's task-state steps; a soft reboot is a clean restart
// within shutdown_timeout that falls back to a hard one.
func (m *Manager) opReboot(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	rctx := map[string]any(req.Context)
	var typ string
	_ = json.Unmarshal(req.Args["reboot_type"], &typ)
	hard := strings.EqualFold(typ, "HARD")
	pending, started := objects.TaskRebootPending, objects.TaskRebootStarted
	first := []objects.TaskState{objects.TaskRebooting, objects.TaskRebootPending, objects.TaskRebootStarted}
	if hard {
		pending, started = objects.TaskRebootPendingHard, objects.TaskRebootStartedHard
		first = []objects.TaskState{objects.TaskRebootingHard, objects.TaskRebootPendingHard, objects.TaskRebootStartedHard}
	}
	if p, err := m.powerState(ctx, uuid); err == nil {
		inst.SetPowerState(p)
	}
	inst.SetTaskState(pending)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(first...)); err != nil {
		return nil, err
	}
	inst.SetTaskState(started)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(pending)); err != nil {
		return nil, err
	}
	rebootErr := m.lc.Driver.Reboot(ctx, uuid, hard, m.lc.ShutdownTimeout, m.replug(inst))
	p, err := m.powerState(ctx, uuid)
	if err != nil {
		return nil, errors.Join(rebootErr, err)
	}
	inst.SetPowerState(p)
	if rebootErr != nil {
		if p != objects.PowerRunning {
			// Nova leaves a guest that failed to come back in ERROR.
			inst.SetVMState(objects.VMError)
			inst.SetTaskState(objects.TaskNone)
			_ = m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{})
		}
		return nil, fmt.Errorf("reboot %s: %w", uuid, rebootErr)
	}
	inst.SetVMState(objects.VMActive)
	inst.SetTaskState(objects.TaskNone)
	return nil, m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{})
}

// settle ends an operation as every nova driver call does: the power state read back from the
// container, the new vm_state, no task, saved against the task state the operation expects.
func (m *Manager) settle(ctx context.Context, rctx map[string]any, inst *objects.Instance, vm objects.VMState, expected ...objects.TaskState) error {
	p, err := m.powerState(ctx, inst.UUID())
	if err != nil {
		return err
	}
	inst.SetPowerState(p)
	inst.SetVMState(vm)
	inst.SetTaskState(objects.TaskNone)
	return m.cond.InstanceSave(ctx, rctx, inst, tasks(expected...))
}

// simpleOp runs a driver call and settles the instance in vm.
func (m *Manager) simpleOp(ctx context.Context, req *rpc.Request, inst *objects.Instance,
	do func(context.Context, string) error, vm objects.VMState, expected objects.TaskState) error {
	if err := do(ctx, inst.UUID()); err != nil {
		return err
	}
	return m.settle(ctx, map[string]any(req.Context), inst, vm, expected)
}

func (m *Manager) opPause(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	return nil, m.simpleOp(ctx, req, inst, m.lc.Driver.Pause, objects.VMPaused, objects.TaskPausing)
}

func (m *Manager) opUnpause(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	return nil, m.simpleOp(ctx, req, inst, m.lc.Driver.Unpause, objects.VMActive, objects.TaskUnpausing)
}

// opSuspend remembers the vm_state to return to, as nova does in system_metadata.
func (m *Manager) opSuspend(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	sys := inst.SystemMetadata()
	if sys == nil {
		sys = map[string]string{}
	}
	sys["old_vm_state"] = string(inst.VMState())
	if err := inst.Set("system_metadata", sys); err != nil {
		return nil, err
	}
	return nil, m.simpleOp(ctx, req, inst, m.lc.Driver.Suspend, objects.VMSuspended, objects.TaskSuspending)
}

func (m *Manager) opResume(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	sys := inst.SystemMetadata()
	back := objects.VMActive
	if old, ok := sys["old_vm_state"]; ok && old != "" {
		back = objects.VMState(old)
		delete(sys, "old_vm_state")
		if err := inst.Set("system_metadata", sys); err != nil {
			return nil, err
		}
	}
	return nil, m.simpleOp(ctx, req, inst, m.lc.Driver.Resume, back, objects.TaskResuming)
}

// opConsoleOutput is get_console_output: the last tail_length lines of the container's tty.
func (m *Manager) opConsoleOutput(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	var n *int
	_ = json.Unmarshal(req.Args["tail_length"], &n)
	lines := 0
	if n != nil {
		lines = *n
	}
	out, err := m.lc.Driver.ConsoleLog(ctx, inst.UUID(), lines)
	if errors.Is(err, driver.ErrNotFound) {
		return nil, novaFailure("InstanceNotFound", fmt.Sprintf("Instance %s could not be found.", inst.UUID()), 404,
			map[string]any{"instance_id": inst.UUID()})
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
