package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// Resize and cold migration on the same host (nova.conf allow_resize_to_same_host), in
// nova-compute's order (nova/compute/manager.py, Zed): the conductor casts prep_resize
// here (the destination), which claims, casts resize_instance to the source (this host
// again), which powers the guest off and casts finish_resize to the destination, which
// applies the new flavor and powers it back on: VERIFY_RESIZE. nova-api then casts
// confirm_resize (drop the source claim and the migration's allocation) or revert_resize
// (destination), which casts finish_revert_resize (source) to put the old flavor back.
//
// The container keeps its writable layer throughout: a resize is a change of its limits
// (driver.Resize), so the guest's files survive resize, confirm and revert alike.

// Optional capabilities resize needs; *driver.Driver and *cloud.Placement have them.
type (
	resizer interface {
		Resize(ctx context.Context, id string, to spec.Flavor, timeout time.Duration) error
	}
	// allocationMover reads and writes one consumer's allocations (placement 1.28).
	allocationMover interface {
		ConsumerAllocations(ctx context.Context, consumer string) (*cloud.ConsumerAllocations, error)
		PutConsumerAllocations(ctx context.Context, consumer string, a cloud.ConsumerAllocations) error
		PostAllocations(ctx context.Context, byConsumer map[string]cloud.ConsumerAllocations) error
	}
)

var (
	_ resizer         = (*driver.Driver)(nil)
	_ allocationMover = (*cloud.Placement)(nil)
)

// resizeOps are the compute methods of a same-host resize.
func (m *Manager) resizeOps() map[string]OpHandler {
	return map[string]OpHandler{
		"prep_resize":          m.opPrepResize,
		"resize_instance":      m.opResizeInstance,
		"finish_resize":        m.opFinishResize,
		"confirm_resize":       m.opConfirmResize,
		"revert_resize":        m.opRevertResize,
		"finish_revert_resize": m.opFinishRevertResize,
	}
}

// instanceFaultRollback marks a failure after which nova puts the instance back in the
// vm_state it had (InstanceFaultRollback in _error_out_instance_on_exception) instead of
// ERROR: nothing was changed on the guest.
type instanceFaultRollback struct{ inner error }

func (e *instanceFaultRollback) Error() string { return e.inner.Error() }
func (e *instanceFaultRollback) Unwrap() error { return e.inner }

// migrationError is nova's MigrationError.
func migrationError(reason string) *rpc.Failure {
	return novaFailure("MigrationError", "Migration error: "+reason, 500, map[string]any{"reason": reason})
}

// errorOutInstance is _error_out_instance_on_exception: a rollback restores vm_state
// (and clears the task), anything else leaves the instance in ERROR.
func (m *Manager) errorOutInstance(ctx context.Context, rctx map[string]any, inst *objects.Instance, vm objects.VMState, opErr error, log *slog.Logger) {
	var rb *instanceFaultRollback
	if errors.As(opErr, &rb) {
		inst.SetVMState(vm)
	} else {
		inst.SetVMState(objects.VMError)
	}
	inst.SetTaskState(objects.TaskNone)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		log.Error("resize: set instance state after failure", "err", err)
	}
}

// unwrapRollback returns what the decorators record for a rollback: the inner exception.
func unwrapRollback(err error) error {
	var rb *instanceFaultRollback
	if errors.As(err, &rb) {
		return rb.inner
	}
	return err
}

func migrationArg(req *rpc.Request) (*objects.Migration, error) {
	raw, ok := req.Args["migration"]
	if !ok || isJSONNull(raw) {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "migration argument is required"}
	}
	o, err := objects.ObjectFrom(raw)
	if err == nil {
		var mig *objects.Migration
		if mig, err = objects.AsMigration(o); err == nil {
			return mig, nil
		}
	}
	return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: fmt.Sprintf("malformed migration argument: %v", err)}
}

func flavorArg(req *rpc.Request) (*objects.Flavor, error) {
	o, err := objects.ObjectFrom(req.Args["flavor"])
	if err == nil {
		var fl *objects.Flavor
		if fl, err = objects.AsFlavor(o); err == nil {
			return fl, nil
		}
	}
	return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: fmt.Sprintf("malformed flavor argument: %v", err)}
}

func flavorID(f *objects.Flavor) int64 {
	var id int64
	_ = f.Get("id", &id)
	return id
}

func migInt(mig *objects.Migration, field string) int64 {
	var v int64
	_ = mig.Get(field, &v)
	return v
}

// specFlavor is the part of a nova flavor the container enforces.
func specFlavor(f *objects.Flavor) spec.Flavor {
	return spec.Flavor{Name: f.Name(), VCPUs: int(f.VCPUs()), MemoryMB: f.MemoryMB(), RootGB: int(f.RootGB())}
}

// setInstanceInfo is _set_instance_info: the flavor and the columns copied from it.
func setInstanceInfo(inst *objects.Instance, f *objects.Flavor) error {
	for k, v := range map[string]any{
		"instance_type_id": flavorID(f), "memory_mb": f.MemoryMB(), "vcpus": f.VCPUs(),
		"root_gb": f.RootGB(), "ephemeral_gb": f.EphemeralGB(), "flavor": f.Object,
	} {
		if err := inst.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

// newMigrationContext is the MigrationContext the resource tracker's move claim records.
// This driver has no NUMA topology, PCI devices or assigned resources, so the old and new
// sides carry the instance's (empty) PCI requests and devices and nothing else.
func newMigrationContext(inst *objects.Instance, migrationID int64) (*objects.Object, error) {
	uuid := inst.UUID()
	pciReqs := func() *objects.Object {
		r := objects.New("InstancePCIRequests", mustZedVersion("InstancePCIRequests"))
		_ = r.Set("instance_uuid", uuid)
		_ = r.Set("requests", []any{})
		return r
	}
	pciDevs := func() (*objects.Object, error) {
		return objects.NewList("PciDeviceList", mustZedVersion("PciDeviceList"), []*objects.Object{})
	}
	newDevs, err := pciDevs()
	if err != nil {
		return nil, err
	}
	oldDevs, err := pciDevs()
	if err != nil {
		return nil, err
	}
	oldDevs.ResetChanges()
	oldReqs := pciReqs()
	oldReqs.ResetChanges()
	mc := objects.New("MigrationContext", mustZedVersion("MigrationContext"))
	for k, v := range map[string]any{
		"instance_uuid": uuid, "migration_id": migrationID,
		"new_numa_topology": nil, "old_numa_topology": nil,
		"new_pci_devices": newDevs, "old_pci_devices": oldDevs,
		"new_pci_requests": pciReqs(), "old_pci_requests": oldReqs,
		"new_resources": nil, "old_resources": nil,
	} {
		if err := mc.Set(k, v); err != nil {
			return nil, err
		}
	}
	return mc, nil
}

// applyMigrationContext is Instance.apply_migration_context (prefix "new_") and
// revert_migration_context ("old_"): the instance takes one side's NUMA topology, PCI
// requests and devices and resources, locally; the next save writes them.
func applyMigrationContext(inst *objects.Instance, prefix string) error {
	if !inst.Has("migration_context") || inst.IsNull("migration_context") {
		return nil
	}
	var mc *objects.Object
	if err := inst.Get("migration_context", &mc); err != nil || mc == nil {
		return fmt.Errorf("read migration context of %s: %w", inst.UUID(), err)
	}
	for _, f := range []string{"numa_topology", "pci_requests", "pci_devices", "resources"} {
		raw, ok := mc.Data[prefix+f]
		if !ok {
			continue
		}
		inst.SetRaw(f, raw)
	}
	return nil
}

// localCast delivers a compute cast addressed to this host itself: for a same-host resize
// nova-compute casts resize_instance, finish_resize and finish_revert_resize to its own
// topic. The request goes through the same decoding, decorators and per-instance lock as
// one received from the broker, in the background as a cast does, after the caller
// releases the instance.
func (m *Manager) localCast(ctx context.Context, rctx map[string]any, method string, args map[string]any) error {
	cm, ok := computeMethods[method]
	h := m.resizeOps()[method]
	if !ok || h == nil {
		return fmt.Errorf("cast %s to %s: no such local method", method, m.opts.Host)
	}
	req := &rpc.Request{Method: method, Version: "6.0", Context: rpc.Context(rctx).Clone(), Args: map[string]json.RawMessage{}}
	for k, v := range args {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("cast %s: encode %s: %w", method, k, err)
		}
		req.Args[k] = raw
	}
	handler := m.wrap(method, cm, h)
	m.builds.Add(1)
	go func() {
		defer m.builds.Done()
		if _, err := handler(context.WithoutCancel(ctx), req); err != nil {
			m.log.Warn("resize step failed", "method", method, "request_id", req.Context.RequestID(), "err", err)
		}
	}()
	return nil
}

// rawArg returns an argument as received, for passing it on in a cast.
func rawArg(req *rpc.Request, name string) json.RawMessage {
	if raw, ok := req.Args[name]; ok {
		return raw
	}
	return json.RawMessage("null")
}

// opPrepResize is prep_resize on the destination: stash the new flavor and the vm_state,
// claim (migration pre-migrating, migration context, usage) and cast resize_instance to
// the source host.
func (m *Manager) opPrepResize(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	fl, err := flavorArg(req)
	if err != nil {
		return nil, err
	}
	vm := inst.VMState()
	err = m.prepResize(ctx, rctx, req, inst, mig, fl)
	if err == nil {
		return nil, nil
	}
	// errors_out_migration_ctxt, _revert_allocation, then _error_out_instance_on_exception.
	mig.SetStatus("error")
	if serr := m.cond.MigrationSave(ctx, rctx, mig); serr != nil {
		log.Error("prep_resize: set migration status to error", "err", serr)
	}
	if rerr := m.revertAllocation(ctx, inst.UUID(), mig.UUID()); rerr != nil {
		log.Error("prep_resize: give the migration's allocation back to the instance", "err", rerr)
	}
	m.errorOutInstance(ctx, rctx, inst, vm, err, log)
	return nil, unwrapRollback(err)
}

func (m *Manager) prepResize(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, mig *objects.Migration, fl *objects.Flavor) error {
	if inst.Host() == "" {
		return migrationError("Instance has no source host")
	}
	if inst.Host() != m.opts.Host {
		// The guest's disk is a container layer on the source host; there is no way to
		// move it here.
		return &instanceFaultRollback{migrationError(fmt.Sprintf("resize from host %s to %s: nova-container-agent resizes on the same host only", inst.Host(), m.opts.Host))}
	}
	if _, ok := m.lc.Driver.(resizer); !ok {
		return &instanceFaultRollback{notSupported("prep_resize")}
	}
	if err := inst.Set("new_flavor", fl.Object); err != nil {
		return err
	}
	sys := inst.SystemMetadata()
	if sys == nil {
		sys = map[string]string{}
	}
	sys["old_vm_state"] = string(inst.VMState())
	if err := inst.Set("system_metadata", sys); err != nil {
		return err
	}
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return err
	}
	// ResourceTracker._move_claim with an existing migration.
	for k, v := range map[string]any{"dest_compute": m.opts.Host, "dest_node": m.opts.Host, "dest_host": m.opts.HostIP} {
		if err := mig.Set(k, v); err != nil {
			return err
		}
	}
	mig.SetStatus("pre-migrating")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	mc, err := newMigrationContext(inst, mig.ID())
	if err != nil {
		return err
	}
	if err := inst.Set("migration_context", mc); err != nil {
		return err
	}
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return err
	}
	m.auditAfter(ctx, "prep_resize")
	return m.localCast(ctx, rctx, "resize_instance", map[string]any{
		"instance": inst.Object, "migration": mig.Object, "image": rawArg(req, "image"), "flavor": fl.Object,
		"clean_shutdown": boolArg(req, "clean_shutdown", true), "request_spec": rawArg(req, "request_spec"),
	})
}

// auditAfter reports usage after a claim changed it, as the resource tracker's _update does.
func (m *Manager) auditAfter(ctx context.Context, step string) {
	if err := m.UpdateAvailableResource(ctx); err != nil {
		m.log.Warn("resource audit after "+step, "err", err)
	}
}

// opResizeInstance is resize_instance on the source: migration migrating, the guest
// stopped cleanly and its limits set to the new flavor (migrate_disk_and_power_off),
// migration post-migrating, the instance handed to the destination (host, node,
// old_flavor) and finish_resize cast there.
func (m *Manager) opResizeInstance(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	fl, err := flavorArg(req)
	if err != nil {
		return nil, err
	}
	vm := inst.VMState()
	err = m.resizeInstance(ctx, rctx, req, inst, mig, fl)
	if err == nil {
		return nil, nil
	}
	mig.SetStatus("error")
	if serr := m.cond.MigrationSave(ctx, rctx, mig); serr != nil {
		log.Error("resize_instance: set migration status to error", "err", serr)
	}
	m.errorOutInstance(ctx, rctx, inst, vm, err, log)
	if rerr := m.revertAllocation(ctx, inst.UUID(), mig.UUID()); rerr != nil {
		log.Error("resize_instance: give the migration's allocation back to the instance", "err", rerr)
	}
	return nil, unwrapRollback(err)
}

func (m *Manager) resizeInstance(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, mig *objects.Migration, fl *objects.Flavor) error {
	uuid := inst.UUID()
	if mig.DestCompute() != m.opts.Host {
		return &instanceFaultRollback{migrationError(fmt.Sprintf("resize from host %s to %s: nova-container-agent resizes on the same host only", m.opts.Host, mig.DestCompute()))}
	}
	rs, ok := m.lc.Driver.(resizer)
	if !ok {
		return &instanceFaultRollback{notSupported("resize_instance")}
	}
	mig.SetStatus("migrating")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	inst.SetTaskState(objects.TaskResizeMigrating)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizePrep)); err != nil {
		return err
	}
	timeout := m.lc.ShutdownTimeout
	if !boolArg(req, "clean_shutdown", true) {
		timeout = 0
	}
	if err := rs.Resize(ctx, uuid, specFlavor(fl), timeout); err != nil {
		if errors.Is(err, spec.ErrInvalid) || errors.Is(err, driver.ErrUnsupported) {
			// Refused before the guest was touched: the instance goes back as it was.
			return &instanceFaultRollback{novaFailure("ResizeError", "Resize error: "+err.Error(), 500, map[string]any{"reason": err.Error()})}
		}
		return fmt.Errorf("resize %s to flavor %s: %w", uuid, fl.Name(), err)
	}
	// migrate_instance_start: the port stays bound to this host; nothing to change.
	mig.SetStatus("post-migrating")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	old, err := inst.Flavor()
	if err != nil || old == nil {
		return fmt.Errorf("instance %s has no flavor: %v", uuid, err)
	}
	inst.SetHost(mig.DestCompute())
	inst.SetNode(mig.DestNode())
	if err := inst.Set("old_flavor", old.Object); err != nil {
		return err
	}
	inst.SetTaskState(objects.TaskResizeMigrated)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeMigrating)); err != nil {
		return err
	}
	return m.localCast(ctx, rctx, "finish_resize", map[string]any{
		"instance": inst.Object, "migration": mig.Object, "image": rawArg(req, "image"),
		"disk_info": nil, "request_spec": rawArg(req, "request_spec"),
	})
}

// opFinishResize is finish_resize on the destination: the instance takes the new flavor
// and the migration context's new side, the guest is powered on unless it was stopped
// before (finish_migration), the migration is finished and the instance RESIZED.
func (m *Manager) opFinishResize(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	if err := m.finishResize(ctx, rctx, inst, mig); err != nil {
		m.errorOutInstance(ctx, rctx, inst, inst.VMState(), err, log)
		// The instance is on this host now: keep its allocation, drop the migration's.
		if derr := m.deleteMigrationAllocation(ctx, mig.UUID()); derr != nil {
			log.Error("finish_resize: delete the migration's allocation", "err", derr)
		}
		return nil, unwrapRollback(err)
	}
	return nil, nil
}

func (m *Manager) finishResize(ctx context.Context, rctx map[string]any, inst *objects.Instance, mig *objects.Migration) error {
	uuid := inst.UUID()
	old, err := inst.Flavor()
	if err != nil || old == nil {
		return fmt.Errorf("instance %s has no flavor: %v", uuid, err)
	}
	oldVM := objects.VMActive
	if s := inst.SystemMetadata()["old_vm_state"]; s != "" {
		oldVM = objects.VMState(s)
	}
	if err := inst.Set("old_flavor", old.Object); err != nil {
		return err
	}
	newFl := old
	if migInt(mig, "old_instance_type_id") != migInt(mig, "new_instance_type_id") {
		if newFl, err = inst.NewFlavor(); err != nil || newFl == nil {
			return fmt.Errorf("instance %s has no new_flavor: %v", uuid, err)
		}
		if err := setInstanceInfo(inst, newFl); err != nil {
			return err
		}
	}
	if err := applyMigrationContext(inst, "new_"); err != nil {
		return err
	}
	// setup_networks_on_host / migrate_instance_finish: the binding already names this host.
	inst.SetTaskState(objects.TaskResizeFinish)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeMigrated)); err != nil {
		return err
	}
	if oldVM != objects.VMStopped {
		if err := m.lc.Driver.PowerOn(ctx, uuid, m.replug(inst)); err != nil {
			if ferr := setInstanceInfo(inst, old); ferr != nil {
				err = errors.Join(err, ferr)
			}
			return fmt.Errorf("power on %s with flavor %s: %w", uuid, newFl.Name(), err)
		}
	}
	mig.SetStatus("finished")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	if p, err := m.powerState(ctx, uuid); err == nil {
		inst.SetPowerState(p)
	}
	inst.SetVMState(objects.VMResized)
	inst.SetTaskState(objects.TaskNone)
	inst.SetLaunchedAt(m.now())
	return m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeFinish))
}

// opConfirmResize is confirm_resize on the source: the migration confirmed, the old
// flavor's claim and the migration context dropped, the instance ACTIVE (or STOPPED if
// powered off), and whatever happened, the migration's allocation deleted and the stashed
// flavors cleared. On this driver there is no old guest to clean up: the container already
// runs with the new limits.
func (m *Manager) opConfirmResize(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	switch mig.Status() {
	case "confirmed":
		log.Info("migration is already confirmed", "migration", mig.ID())
		return nil, nil
	case "finished", "confirming":
	default:
		log.Warn("unexpected confirmation status of migration; not confirming", "migration", mig.ID(), "status", mig.Status())
		return nil, nil
	}
	fresh, err := m.cond.InstanceGetByUUID(ctx, rctx, inst.UUID(), []string{"metadata", "system_metadata", "flavor"})
	if errors.Is(err, conductor.ErrNotFound) {
		log.Info("instance is not found during confirmation")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cerr := m.confirmResize(ctx, rctx, fresh, mig)
	if cerr != nil {
		m.errorOutInstance(ctx, rctx, fresh, fresh.VMState(), cerr, log)
	}
	// Whatever happened, the instance lives on with the new flavor here.
	var errs []error
	if cerr != nil {
		errs = append(errs, unwrapRollback(cerr))
	}
	if err := m.deleteMigrationAllocation(ctx, mig.UUID()); err != nil {
		errs = append(errs, err)
	}
	if err := m.deleteStashedFlavorInfo(ctx, rctx, fresh); err != nil {
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (m *Manager) confirmResize(ctx context.Context, rctx map[string]any, inst *objects.Instance, mig *objects.Migration) error {
	// drop_move_claim_at_source.
	mig.SetStatus("confirmed")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	m.auditAfter(ctx, "confirm_resize")
	if err := inst.Set("migration_context", nil); err != nil {
		return err
	}
	vm := objects.VMActive
	if inst.PowerState() == objects.PowerShutdown {
		vm = objects.VMStopped
	}
	inst.SetVMState(vm)
	inst.SetTaskState(objects.TaskNone)
	return m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskNone, objects.TaskDeleting, objects.TaskSoftDeleting))
}

// deleteStashedFlavorInfo is _delete_stashed_flavor_info.
func (m *Manager) deleteStashedFlavorInfo(ctx context.Context, rctx map[string]any, inst *objects.Instance) error {
	sys := inst.SystemMetadata()
	delete(sys, "old_vm_state")
	for k, v := range map[string]any{"old_flavor": nil, "new_flavor": nil, "system_metadata": sys} {
		if err := inst.Set(k, v); err != nil {
			return err
		}
	}
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return fmt.Errorf("clear stashed flavors of %s: %w", inst.UUID(), err)
	}
	return nil
}

// opRevertResize is revert_resize on the destination: the guest stopped (destroy of the
// resized guest; here the same container, kept for the source side), the migration
// reverted, the new flavor's claim dropped and the migration context's old side put back,
// then finish_revert_resize cast to the source.
func (m *Manager) opRevertResize(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	if err := m.revertResize(ctx, rctx, req, inst, mig); err != nil {
		m.errorOutInstance(ctx, rctx, inst, inst.VMState(), err, log)
		return nil, unwrapRollback(err)
	}
	return nil, nil
}

func (m *Manager) revertResize(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, mig *objects.Migration) error {
	uuid := inst.UUID()
	if mig.SourceCompute() != m.opts.Host {
		return migrationError(fmt.Sprintf("revert to host %s: nova-container-agent resizes on the same host only", mig.SourceCompute()))
	}
	if err := m.lc.Driver.PowerOff(ctx, uuid, m.lc.ShutdownTimeout); err != nil {
		return fmt.Errorf("power off %s for revert: %w", uuid, err)
	}
	// drop_move_claim_at_dest.
	mig.SetStatus("reverted")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		return err
	}
	m.auditAfter(ctx, "revert_resize")
	// The migration context is lazy-loaded in nova; one read brings it.
	if !inst.Has("migration_context") {
		fresh, err := m.cond.InstanceGetByUUID(ctx, rctx, uuid, []string{"migration_context"})
		if err != nil {
			return fmt.Errorf("read migration context of %s: %w", uuid, err)
		}
		if fresh.Has("migration_context") {
			inst.Data["migration_context"] = fresh.Data["migration_context"]
		}
	}
	if err := applyMigrationContext(inst, "old_"); err != nil {
		return err
	}
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeReverting)); err != nil {
		return err
	}
	return m.localCast(ctx, rctx, "finish_revert_resize", map[string]any{
		"instance": inst.Object, "migration": mig.Object, "request_spec": rawArg(req, "request_spec"),
	})
}

// opFinishRevertResize is finish_revert_resize on the source: the old flavor, host and
// node back on the instance, the migration's allocation moved back to it, the container's
// old limits applied and the guest powered on unless it was stopped before, the migration
// context dropped; whatever happens, the stashed flavors are cleared.
func (m *Manager) opFinishRevertResize(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := map[string]any(req.Context)
	log := m.log.With("instance", inst.UUID(), "request_id", req.Context.RequestID())
	mig, err := migrationArg(req)
	if err != nil {
		return nil, err
	}
	ferr := m.finishRevertResize(ctx, rctx, req, inst, mig)
	if ferr != nil {
		m.errorOutInstance(ctx, rctx, inst, inst.VMState(), ferr, log)
	}
	if err := m.deleteStashedFlavorInfo(ctx, rctx, inst); err != nil {
		return nil, errors.Join(unwrapRollback(ferr), err)
	}
	if ferr != nil {
		return nil, unwrapRollback(ferr)
	}
	return nil, nil
}

func (m *Manager) finishRevertResize(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, mig *objects.Migration) error {
	uuid := inst.UUID()
	rs, ok := m.lc.Driver.(resizer)
	if !ok {
		return notSupported("finish_revert_resize")
	}
	oldVM := objects.VMActive
	if s := inst.SystemMetadata()["old_vm_state"]; s != "" {
		oldVM = objects.VMState(s)
	}
	old, err := inst.OldFlavor()
	if err != nil || old == nil {
		return fmt.Errorf("instance %s has no old_flavor to revert to: %v", uuid, err)
	}
	// _revert_instance_flavor_host_node.
	if err := setInstanceInfo(inst, old); err != nil {
		return err
	}
	inst.SetHost(mig.SourceCompute())
	inst.SetNode(mig.SourceNode())
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeReverting)); err != nil {
		return err
	}
	if err := m.revertAllocation(ctx, uuid, mig.UUID()); err != nil {
		return err
	}
	// finish_revert_migration: the old limits (the guest is already off), then power on.
	if err := rs.Resize(ctx, uuid, specFlavor(old), m.lc.ShutdownTimeout); err != nil {
		return fmt.Errorf("revert %s to flavor %s: %w", uuid, old.Name(), err)
	}
	powerOn := oldVM != objects.VMStopped
	if powerOn {
		if err := m.lc.Driver.PowerOn(ctx, uuid, m.replug(inst)); err != nil {
			return fmt.Errorf("power on %s after revert: %w", uuid, err)
		}
	}
	if err := inst.Set("migration_context", nil); err != nil {
		return err
	}
	inst.SetLaunchedAt(m.now())
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskResizeReverting)); err != nil {
		return err
	}
	if p, err := m.powerState(ctx, uuid); err == nil {
		inst.SetPowerState(p)
	}
	if powerOn {
		inst.SetVMState(objects.VMActive)
		inst.SetTaskState(objects.TaskNone)
		return m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{})
	}
	inst.SetTaskState(objects.TaskPoweringOff)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return err
	}
	// nova calls its decorated stop_instance: its own action event included.
	_, err = m.runLocked("stop_instance", computeMethods["stop_instance"], m.opStop)(ctx, req, inst)
	return err
}

// MoveAllocationsPlan is placement's move_allocations as the two consumer writes of one
// POST /allocations: the target takes the source's allocations (replacing its own) and
// the source is emptied. Pure: it only builds the bodies, against the generations read.
func MoveAllocationsPlan(source, target cloud.ConsumerAllocations) (toTarget, emptySource cloud.ConsumerAllocations) {
	// Both writes carry the source's project and user, as nova's move_allocations does.
	toTarget = cloud.ConsumerAllocations{Allocations: source.Allocations, ConsumerGeneration: target.ConsumerGeneration,
		ProjectID: source.ProjectID, UserID: source.UserID}
	emptySource = cloud.ConsumerAllocations{Allocations: map[string]map[string]int{}, ConsumerGeneration: source.ConsumerGeneration,
		ProjectID: source.ProjectID, UserID: source.UserID}
	return toTarget, emptySource
}

func (m *Manager) allocations() (allocationMover, error) {
	am, ok := m.placement.(allocationMover)
	if !ok {
		return nil, errors.New("placement client cannot read or write consumer allocations")
	}
	return am, nil
}

// revertAllocation is _revert_allocation: the allocation the conductor moved to the
// migration at the start goes back to the instance. A migration without allocations is
// logged and left, as nova does.
func (m *Manager) revertAllocation(ctx context.Context, instanceUUID, migrationUUID string) error {
	am, err := m.allocations()
	if err != nil {
		return err
	}
	src, err := am.ConsumerAllocations(ctx, migrationUUID)
	if err != nil {
		return fmt.Errorf("read allocations of migration %s: %w", migrationUUID, err)
	}
	if len(src.Allocations) == 0 {
		m.log.Error("no allocations held by the migration; cannot give the source allocation back to the instance",
			"instance", instanceUUID, "migration", migrationUUID)
		return nil
	}
	dst, err := am.ConsumerAllocations(ctx, instanceUUID)
	if err != nil {
		return fmt.Errorf("read allocations of instance %s: %w", instanceUUID, err)
	}
	toTarget, empty := MoveAllocationsPlan(*src, *dst)
	// One transaction, as nova's move_allocations: written as two, a host near capacity
	// would refuse the first write, and a failure between them would leave the instance
	// holding both flavors or neither.
	if err := am.PostAllocations(ctx, map[string]cloud.ConsumerAllocations{instanceUUID: toTarget, migrationUUID: empty}); err != nil {
		return fmt.Errorf("move allocations of migration %s to instance %s: %w", migrationUUID, instanceUUID, err)
	}
	return nil
}

// deleteMigrationAllocation is delete_allocation_for_instance(consumer_type='migration',
// force=False): read the migration's allocations and write them empty against the
// consumer generation read.
func (m *Manager) deleteMigrationAllocation(ctx context.Context, migrationUUID string) error {
	am, err := m.allocations()
	if err != nil {
		return err
	}
	cur, err := am.ConsumerAllocations(ctx, migrationUUID)
	if err != nil {
		return fmt.Errorf("read allocations of migration %s: %w", migrationUUID, err)
	}
	if len(cur.Allocations) == 0 {
		return nil
	}
	_, empty := MoveAllocationsPlan(*cur, cloud.ConsumerAllocations{})
	if err := am.PutConsumerAllocations(ctx, migrationUUID, empty); err != nil {
		return fmt.Errorf("delete allocations of migration %s: %w", migrationUUID, err)
	}
	return nil
}

// ResizeHeldUsage is what a same-host resize in progress holds beyond the instance's
// current flavor, as nova's _update_usage_from_migration counts it: before finish_resize
// the new flavor (the claim), after it the old one (room for a revert). ok is false for an
// instance that is not resizing.
func ResizeHeldUsage(inst *objects.Instance) (u InstanceUsage, ok bool) {
	if !inst.Has("migration_context") || inst.IsNull("migration_context") {
		return InstanceUsage{}, false
	}
	var fl *objects.Flavor
	var err error
	switch inst.TaskState() {
	case objects.TaskResizePrep, objects.TaskResizeMigrating, objects.TaskResizeMigrated:
		fl, err = inst.NewFlavor()
	default:
		if inst.VMState() != objects.VMResized && inst.TaskState() != objects.TaskResizeFinish && inst.TaskState() != objects.TaskResizeReverting {
			return InstanceUsage{}, false
		}
		fl, err = inst.OldFlavor()
	}
	if err != nil || fl == nil {
		return InstanceUsage{}, false
	}
	return InstanceUsage{VCPUs: int(fl.VCPUs()), MemoryMB: int(fl.MemoryMB()), RootGB: int(fl.RootGB()),
		EphemeralGB: int(fl.EphemeralGB()), SwapMB: int(fl.SwapMB()), ProjectID: inst.ProjectID()}, true
}
