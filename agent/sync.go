package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

// InitHost is nova's init_host for a restarted agent: every instance of this host ends in a
// stable state (no transitional task_state survives a restart), running instances get their
// ports re-plugged (a host reboot recreates sandboxes), and containers whose instance is gone
// are removed. Nothing is created twice: every step is idempotent.
func (m *Manager) InitHost(ctx context.Context) error {
	if m.lc == nil {
		return nil
	}
	actx := m.adminContext()
	insts, err := m.cond.InstanceListGetByHost(ctx, actx, m.opts.Host, []string{"info_cache", "metadata", "system_metadata", "flavor"})
	if err != nil {
		return fmt.Errorf("init host: list instances: %w", err)
	}
	ours := map[string]bool{}
	for _, inst := range insts {
		ours[inst.UUID()] = true
		log := m.log.With("instance", inst.UUID())
		unlock := m.locks.Lock(inst.UUID())
		if err := m.initInstance(ctx, actx, inst, log); err != nil {
			log.Error("init instance", "err", err)
		}
		unlock()
	}
	return m.removeOrphans(ctx, actx, ours)
}

// initInstance is _init_instance: finish or fail what a restart interrupted.
func (m *Manager) initInstance(ctx context.Context, actx map[string]any, inst *objects.Instance, log *slog.Logger) error {
	uuid := inst.UUID()
	vm, task := inst.VMState(), inst.TaskState()
	switch {
	case vm == objects.VMBuilding || task == objects.TaskScheduling || task == objects.TaskBlockDeviceMapping ||
		task == objects.TaskNetworking || task == objects.TaskSpawning:
		// A build cut short cannot be resumed: nova puts it in ERROR; its ports stay for the
		// delete that follows, which releases them.
		log.Warn("build was interrupted by a restart; setting ERROR")
		if err := m.lc.Driver.Destroy(ctx, uuid); err != nil {
			log.Warn("remove half-built container", "err", err)
		}
		m.addFault(ctx, actx, uuid, buildAborted(uuid, "the compute agent restarted during the build", nil))
		inst.SetVMState(objects.VMError)
		inst.SetTaskState(objects.TaskNone)
		return m.cond.InstanceSave(ctx, actx, inst, conductor.SaveOptions{})
	case task == objects.TaskDeleting:
		log.Info("finishing a delete interrupted by a restart")
		_, err := m.opTerminate(ctx, &rpc.Request{Context: rpc.Context(actx)}, inst)
		return err
	case vm == objects.VMDeleted || vm == objects.VMError || vm == objects.VMShelvedOffloaded:
		return nil
	}
	st, err := m.lc.Driver.GetState(ctx, uuid)
	if err != nil {
		return err
	}
	power := objects.PowerState(st.Power)
	// Running instances keep their network across host reboots: plugging is idempotent and
	// repairs what a lost sandbox namespace took away.
	if power == objects.PowerRunning {
		ns, err := m.sandboxNetNS(ctx, uuid)
		if err == nil {
			if vifs, verr := instanceVIFs(inst); verr == nil && len(vifs) > 0 {
				if err := m.lc.Plugger.Plug(ctx, uuid, ns, vifs); err != nil {
					log.Warn("re-plug ports", "err", err)
				}
			}
		}
	}
	if task != objects.TaskNone {
		// Any other interrupted action: settle on what the container really is, as nova's
		// _init_instance does for power and pause actions.
		log.Info("clearing task state interrupted by a restart", "task_state", task, "power_state", power)
		inst.SetVMState(vmStateFor(vm, power))
		inst.SetTaskState(objects.TaskNone)
		inst.SetPowerState(power)
		return m.cond.InstanceSave(ctx, actx, inst, conductor.SaveOptions{})
	}
	if vm == objects.VMActive && power != objects.PowerRunning && m.opts.ResumeGuestsStateOnHostBoot && st.Reason != "missing" {
		log.Info("restarting guest that was running before the host went down")
		if err := m.lc.Driver.PowerOn(ctx, uuid, m.replug(inst)); err != nil {
			return err
		}
		power, _ = m.powerState(ctx, uuid)
	}
	if power != inst.PowerState() {
		inst.SetPowerState(power)
		return m.cond.InstanceSave(ctx, actx, inst, conductor.SaveOptions{})
	}
	return nil
}

// SandboxNetNS is optional on the driver; the real one has it.
type sandboxer interface {
	SandboxNetNS(ctx context.Context, id string) (string, error)
}

func (m *Manager) sandboxNetNS(ctx context.Context, uuid string) (string, error) {
	s, ok := m.lc.Driver.(sandboxer)
	if !ok {
		return "", errors.New("driver has no sandbox namespaces")
	}
	return s.SandboxNetNS(ctx, uuid)
}

func vmStateFor(current objects.VMState, p objects.PowerState) objects.VMState {
	switch p {
	case objects.PowerRunning:
		if current == objects.VMRescued || current == objects.VMResized {
			return current
		}
		return objects.VMActive
	case objects.PowerPaused:
		return objects.VMPaused
	case objects.PowerSuspended:
		return objects.VMSuspended
	default:
		return objects.VMStopped
	}
}

// removeOrphans deletes containers (and their ports on the bridge) whose instance no longer
// belongs to this host: deleted while the agent was down, or moved away.
func (m *Manager) removeOrphans(ctx context.Context, actx map[string]any, ours map[string]bool) error {
	listed, err := m.lc.Driver.ListInstances(ctx)
	if err != nil {
		return fmt.Errorf("init host: list containers: %w", err)
	}
	var errs []error
	for _, l := range listed {
		if ours[l.UUID] {
			continue
		}
		inst, err := m.cond.InstanceGetByUUID(ctx, actx, l.UUID, []string{"info_cache"})
		if err == nil && inst.Host() == m.opts.Host && !inst.Deleted() {
			continue // raced with a build that set host after our listing
		}
		if err != nil && !errors.Is(err, conductor.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		m.log.Info("removing orphan container", "instance", l.UUID)
		if err := m.lc.Driver.Destroy(ctx, l.UUID); err != nil {
			errs = append(errs, err)
		}
		// Ports are released only for a deleted instance: one that lives on another host may
		// use the same tap names on this machine (two agents side by side).
		if inst != nil && (inst.Deleted() || inst.VMState() == objects.VMDeleted) {
			if vifs, verr := instanceVIFs(inst); verr == nil {
				if err := m.lc.Plugger.Unplug(ctx, l.UUID, vifs); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// WatchPowerEvents follows the driver's lifecycle events and applies nova's power-state sync to
// each one as it happens: a guest that powered off or crashed by itself is stopped through
// nova's stop flow (an action "stop", SHUTOFF), exactly as _sync_instance_power_state does.
func (m *Manager) WatchPowerEvents(ctx context.Context) {
	if m.lc == nil {
		return
	}
	w, ok := m.lc.Driver.(interface {
		Watch(ctx context.Context, fn func(driver.Event)) error
	})
	if !ok {
		return
	}
	err := w.Watch(ctx, func(ev driver.Event) {
		if ev.Kind != driver.EventStopped && ev.Kind != driver.EventOOM {
			return
		}
		go func() {
			if err := m.syncInstance(ctx, ev.UUID); err != nil && ctx.Err() == nil {
				m.log.Warn("power state sync", "instance", ev.UUID, "err", err)
			}
		}()
	})
	if err != nil && ctx.Err() == nil {
		m.log.Error("container event watch ended", "err", err)
	}
}

// SyncPowerStates is the _sync_power_states periodic task over every instance of this host.
func (m *Manager) SyncPowerStates(ctx context.Context) error {
	if m.lc == nil {
		return nil
	}
	insts, err := m.cond.InstanceListGetByHost(ctx, m.adminContext(), m.opts.Host, []string{})
	if err != nil {
		return fmt.Errorf("sync power states: %w", err)
	}
	var errs []error
	for _, in := range insts {
		if err := m.syncInstance(ctx, in.UUID()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncInstance is _sync_instance_power_state for one instance.
func (m *Manager) syncInstance(ctx context.Context, uuid string) error {
	unlock := m.locks.Lock(uuid)
	defer unlock()
	actx := m.adminContext()
	inst, err := m.cond.InstanceGetByUUID(ctx, actx, uuid, []string{"info_cache", "system_metadata"})
	if errors.Is(err, conductor.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if inst.Host() != m.opts.Host || inst.TaskState() != objects.TaskNone {
		return nil // moved away, or an operation is in progress and will set the state itself
	}
	power, err := m.powerState(ctx, uuid)
	if err != nil {
		return err
	}
	if power != inst.PowerState() {
		inst.SetPowerState(power)
		if err := m.cond.InstanceSave(ctx, actx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskNone}}); err != nil {
			return err
		}
	}
	if inst.VMState() == objects.VMActive && (power == objects.PowerShutdown || power == objects.PowerCrashed) {
		// "Instance shutdown by itself. Calling the stop API." — record the action and stop it.
		m.log.Info("instance shut down by itself; stopping it as nova does", "instance", uuid, "power_state", power)
		if _, err := m.cond.ClassAction(ctx, actx, "InstanceAction", "action_start",
			[]any{uuid, "stop"}, map[string]any{"want_result": false}); err != nil {
			m.log.Warn("record stop action", "instance", uuid, "err", err)
		}
		inst.SetTaskState(objects.TaskPoweringOff)
		if err := m.cond.InstanceSave(ctx, actx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskNone}}); err != nil {
			return err
		}
		req := &rpc.Request{Method: "stop_instance", Context: rpc.Context(actx),
			Args: map[string]json.RawMessage{"clean_shutdown": json.RawMessage("false")}}
		spec := computeMethods["stop_instance"]
		_, err := m.runLocked("stop_instance", spec, m.opStop)(ctx, req, inst)
		return err
	}
	return nil
}

// RunPowerSync runs SyncPowerStates every interval until ctx ends (sync_power_state_interval;
// <= 0 disables it).
func (m *Manager) RunPowerSync(ctx context.Context, interval time.Duration) {
	if interval <= 0 || m.lc == nil {
		return
	}
	m.every(ctx, "sync_power_states", interval, interval, m.SyncPowerStates)
}
