package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
	"github.com/nova-container-agent/nova-container-agent/images/snapshot"
)

// ImageWriter is the part of Glance a snapshot uploads through.
type ImageWriter interface {
	SetImageFormat(ctx context.Context, id, diskFormat, containerFormat string) error
	UploadImage(ctx context.Context, id string, r io.Reader) error
	DownloadImage(ctx context.Context, id string) (*cloud.ImageData, error)
}

// Optional driver capabilities used by the operations below; *driver.Driver has them all.
type (
	rebuilder interface {
		Rebuild(ctx context.Context, inst spec.Instance, plug driver.PlugFunc) error
	}
	diagnoser interface {
		Diagnostics(ctx context.Context, id string) (driver.Diagnostics, error)
	}
	snapshotter interface {
		Snapshot(ctx context.Context, id string) (io.ReadCloser, error)
	}
)

// opRebuild is rebuild_instance without evacuation: the same sandbox, namespace and ports, a
// new root filesystem from image_ref, with nova's task-state steps.
func (m *Manager) opRebuild(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	rctx := map[string]any(req.Context)
	if boolArg(req, "recreate", false) {
		return nil, novaFailure("InstanceEvacuateNotSupported", "Instance evacuate is not supported.", 400, nil)
	}
	rb, ok := m.lc.Driver.(rebuilder)
	if !ok {
		return nil, notSupported("rebuild_instance")
	}
	var imageRef string
	_ = json.Unmarshal(req.Args["image_ref"], &imageRef)
	if imageRef != "" && imageRef != inst.ImageRef() {
		if err := inst.Set("image_ref", imageRef); err != nil {
			return nil, err
		}
	}
	wasStopped := inst.VMState() == objects.VMStopped
	if p, err := m.powerState(ctx, uuid); err == nil {
		inst.SetPowerState(p)
	}
	inst.SetTaskState(objects.TaskRebuilding)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskRebuilding)); err != nil {
		return nil, err
	}
	inst.SetTaskState(objects.TaskRebuildBlockDeviceMapping)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskRebuilding)); err != nil {
		return nil, err
	}
	inst.SetTaskState(objects.TaskRebuildSpawning)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskRebuildBlockDeviceMapping)); err != nil {
		return nil, err
	}
	uctx := cloud.WithUserToken(ctx, stringOf(rctx["auth_token"]))
	image, err := m.ensureImage(uctx, inst)
	if err != nil {
		return nil, fmt.Errorf("prepare image %s for rebuild: %w", inst.ImageRef(), err)
	}
	vifs, err := instanceVIFs(inst)
	if err != nil {
		return nil, err
	}
	sp, err := instanceSpec(inst, image, vifs)
	if err != nil {
		return nil, err
	}
	if err := rb.Rebuild(ctx, sp, m.replug(inst)); err != nil {
		return nil, fmt.Errorf("rebuild %s: %w", uuid, err)
	}
	inst.SetLaunchedAt(time.Now())
	if err := m.settle(ctx, rctx, inst, objects.VMActive, objects.TaskRebuildSpawning); err != nil {
		return nil, err
	}
	if wasStopped {
		// A stopped instance is rebuilt and left stopped, as nova does.
		inst.SetTaskState(objects.TaskPoweringOff)
		if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
			return nil, err
		}
		return m.opStop(ctx, req, inst)
	}
	return nil, nil
}

// opDiagnostics is get_diagnostics in the libvirt driver's key names, so dashboards built for
// KVM hosts read containers the same way.
func (m *Manager) opDiagnostics(ctx context.Context, _ *rpc.Request, inst *objects.Instance) (any, error) {
	dg, ok := m.lc.Driver.(diagnoser)
	if !ok {
		return nil, notSupported("get_diagnostics")
	}
	d, err := dg.Diagnostics(ctx, inst.UUID())
	if errors.Is(err, driver.ErrNotRunning) {
		return nil, novaFailure("InstanceInvalidState", fmt.Sprintf("Instance %s in power state %s. Cannot get_diagnostics while the instance is in this state.", inst.UUID(), "shutdown"), 409,
			map[string]any{"attr": "power state", "instance_uuid": inst.UUID(), "state": "shutdown", "method": "get_diagnostics"})
	}
	if err != nil {
		return nil, err
	}
	out := map[string]any{"memory": d.MemoryLimit / 1024, "memory-actual": d.MemoryBytes / 1024, "memory-rss": (d.MemoryBytes - min(d.MemoryBytes, d.MemoryCache)) / 1024}
	for i, ns := range d.PerCPUNs {
		out[fmt.Sprintf("cpu%d_time", i)] = ns
	}
	for _, n := range d.NICs {
		if n.Name == "lo" {
			continue
		}
		out[n.Name+"_rx"] = n.RxBytes
		out[n.Name+"_rx_packets"] = n.RxPackets
		out[n.Name+"_rx_errors"] = n.RxErrors
		out[n.Name+"_rx_drop"] = n.RxDrop
		out[n.Name+"_tx"] = n.TxBytes
		out[n.Name+"_tx_packets"] = n.TxPackets
		out[n.Name+"_tx_errors"] = n.TxErrors
	}
	return out, nil
}

// opSnapshot is snapshot_instance: the container's filesystem, frozen only while the export
// is staged on local disk, becomes a QCOW2 disk (bootable as a VM where the original image
// was, see images/snapshot) uploaded into the Glance image nova-api created.
func (m *Manager) opSnapshot(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	rctx := map[string]any(req.Context)
	sn, ok := m.lc.Driver.(snapshotter)
	if !ok || m.lc.ImageWriter == nil {
		return nil, notSupported("snapshot_instance")
	}
	var imageID string
	if err := json.Unmarshal(req.Args["image_id"], &imageID); err != nil || imageID == "" {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "snapshot_instance: image_id must be a string"}
	}
	uctx := cloud.WithUserToken(ctx, stringOf(rctx["auth_token"]))
	inst.SetTaskState(objects.TaskImageSnapshot)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskImageSnapshotPending)); err != nil {
		return nil, err
	}
	if p, err := m.powerState(ctx, uuid); err == nil {
		inst.SetPowerState(p)
		if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp(m.lc.SnapshotDir, "snapshot-")
	if err != nil {
		return nil, fmt.Errorf("snapshot work dir: %w", err)
	}
	defer os.RemoveAll(work)

	// The original image gives back what the container adaptation removed (/boot, modules,
	// fstab), so the snapshot boots on KVM too; without it the snapshot still runs here.
	opts := snapshot.Options{WorkDir: work, RootGB: 0, Logger: m.log}
	if fl, err := inst.Flavor(); err == nil && fl != nil {
		opts.RootGB = int(fl.RootGB())
	}
	if orig, size, err := m.spoolOriginal(uctx, inst.ImageRef(), work); err == nil {
		defer orig.Close()
		opts.Original, opts.OriginalSize = orig, size
	} else {
		m.log.Warn("snapshot without the original image: it will run as a container but not boot as a VM", "instance", uuid, "err", err)
	}
	export, err := sn.Snapshot(ctx, uuid)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", uuid, err)
	}
	staged, err := snapshot.Stage(ctx, export, opts)
	export.Close() // thaws the instance: it was paused only while the export was staged
	if err != nil {
		return nil, fmt.Errorf("stage snapshot of %s: %w", uuid, err)
	}
	defer staged.Close()
	inst.SetTaskState(objects.TaskImagePendingUpload)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskImageSnapshot)); err != nil {
		return nil, err
	}
	res, err := staged.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("build snapshot disk of %s: %w", uuid, err)
	}
	defer res.Cleanup()
	// Whether the image boots on KVM too is the operator's question after a snapshot:
	// answer it in the log, with the reason.
	m.log.InfoContext(ctx, "snapshot disk built", "instance", uuid, "image", imageID, "bytes", res.Size,
		"layout", res.Layout.Mode, "vm_bootable", res.VMBootable, "boot_note", res.BootNote, "warnings", res.Warnings)
	inst.SetTaskState(objects.TaskImageUploading)
	if err := m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskImagePendingUpload)); err != nil {
		return nil, err
	}
	f, err := res.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := m.lc.ImageWriter.SetImageFormat(uctx, imageID, "qcow2", "bare"); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", uuid, err)
	}
	if err := m.lc.ImageWriter.UploadImage(uctx, imageID, f); err != nil {
		return nil, fmt.Errorf("upload snapshot of %s to image %s: %w", uuid, imageID, err)
	}
	inst.SetTaskState(objects.TaskNone)
	return nil, m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskImageUploading))
}

// spoolOriginal downloads the instance's original image into dir (a qcow2 file, not a raw
// copy) for the snapshot to read its boot pieces from.
func (m *Manager) spoolOriginal(ctx context.Context, imageID, dir string) (*os.File, int64, error) {
	if imageID == "" {
		return nil, 0, errors.New("instance has no image")
	}
	d, err := m.lc.ImageWriter.DownloadImage(ctx, imageID)
	if err != nil {
		return nil, 0, err
	}
	defer d.Body.Close()
	f, err := os.CreateTemp(dir, "original-*.img")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, d.Body)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("download original image %s: %w", imageID, err)
	}
	return f, n, nil
}
