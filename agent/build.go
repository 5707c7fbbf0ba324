package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
	"github.com/nova-container-agent/nova-container-agent/images/store"
)

// Driver is the instance lifecycle on the container runtime (driver.Driver).
type Driver interface {
	Spawn(ctx context.Context, inst spec.Instance, plug driver.PlugFunc) error
	Destroy(ctx context.Context, id string) error
	PowerOff(ctx context.Context, id string, timeout time.Duration) error
	PowerOn(ctx context.Context, id string, plug driver.PlugFunc) error
	Reboot(ctx context.Context, id string, hard bool, timeout time.Duration, plug driver.PlugFunc) error
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error
	Suspend(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	GetState(ctx context.Context, id string) (driver.State, error)
	ConsoleLog(ctx context.Context, id string, lines int) (string, error)
	ListInstances(ctx context.Context) ([]driver.Listed, error)
}

var _ Driver = (*driver.Driver)(nil)

// Images turns a Glance image into a runnable container image reference, converting and caching
// it on first use (images/store).
type Images interface {
	Ensure(ctx context.Context, imageID string, sum store.Checksum, open store.OpenFunc) (string, error)
}

var _ Images = (*store.Store)(nil)

// Glance is the image API the build reads image metadata and data from.
type Glance interface {
	GetImage(ctx context.Context, id string) (*cloud.Image, error)
	DownloadImage(ctx context.Context, id string) (*cloud.ImageData, error)
}

// VIFPlugger puts an instance's ports into its network namespace and on the integration
// bridge, announces their addresses on the network, and takes them out again.
type VIFPlugger interface {
	Plug(ctx context.Context, instanceUUID, netnsPath string, vifs []VIF) error
	Announce(ctx context.Context, netnsPath string, vifs []VIF) error
	Unplug(ctx context.Context, instanceUUID string, vifs []VIF) error
}

// Lifecycle holds what instance operations need beyond the conductor and placement.
type Lifecycle struct {
	Driver  Driver
	Images  Images
	Glance  Glance
	Neutron Neutron
	Plugger VIFPlugger
	// Bridge is the integration bridge name recorded in the network model.
	Bridge string
	// VIFPluggingTimeout and VIFPluggingIsFatal are nova's options of the same names.
	VIFPluggingTimeout time.Duration
	VIFPluggingIsFatal bool
	// ShutdownTimeout is the clean shutdown grace for stop and soft reboot (nova's shutdown_timeout).
	ShutdownTimeout time.Duration
	// MaxConcurrentBuilds is nova's max_concurrent_builds.
	MaxConcurrentBuilds int
	// ImageWriter uploads snapshots (Glance); nil disables snapshot_instance.
	ImageWriter ImageWriter
	// SnapshotDir holds snapshots while they are built.
	SnapshotDir string
	// Replug, when set, is connected to the manager by SetLifecycle: the driver is built
	// before the manager but needs it to re-plug a guest that rebooted itself into a new
	// sandbox namespace (driver.WithReplug).
	Replug *ReplugHook
}

// buildAborted is nova's BuildAbortException: the fault nova-api shows reads
// "Build of instance <uuid> aborted: <reason>".
func buildAborted(uuid, reason string, err error) error {
	msg := fmt.Sprintf("Build of instance %s aborted: %s", uuid, reason)
	return &rpc.Failure{Module: rpc.ModuleNova, Class: "BuildAbortException", Message: errorMessage(msg, err),
		Kwargs: map[string]any{"instance_uuid": uuid, "reason": errorMessage(reason, err), "code": 500}}
}

// rescheduled is nova's RescheduledException: the build failed on this host for a reason
// another host may not share (the container runtime refused or lost it), so the conductor
// may retry it on an alternate host.
type rescheduled struct {
	uuid, reason string
	err          error
}

func (e *rescheduled) Error() string {
	return fmt.Sprintf("Build of instance %s was re-scheduled: %s", e.uuid, errorMessage(e.reason, e.err))
}

func (e *rescheduled) Unwrap() error { return e.err }

// fault is what the instance shows when no reschedule happens: nova records the reason alone.
func (e *rescheduled) fault() error {
	return &rpc.Failure{Module: rpc.ModuleNova, Class: "RescheduledException", Message: errorMessage(e.reason, e.err),
		Kwargs: map[string]any{"instance_uuid": e.uuid, "reason": errorMessage(e.reason, e.err), "code": 500}}
}

// vifCreateFailed is nova's VirtualInterfaceCreateException: neutron did not report a port
// plugged in time (or reported it failed). Nova aborts such builds rather than rescheduling.
type vifCreateFailed struct{ err error }

func (e *vifCreateFailed) Error() string {
	return "Virtual Interface creation failed: " + e.err.Error()
}
func (e *vifCreateFailed) Unwrap() error { return e.err }

func errorMessage(msg string, err error) string {
	if err == nil {
		return msg
	}
	return msg + ": " + err.Error()
}

// opBuildAndRunInstance is build_and_run_instance: it returns to the RPC loop at once (the
// call is a cast) and builds in the background, serialised per instance and bounded by
// max_concurrent_builds, as nova does.
func (m *Manager) opBuildAndRunInstance(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	rctx := req.Context.Clone()
	m.builds.Add(1)
	go func() {
		defer m.builds.Done()
		m.buildSem <- struct{}{}
		defer func() { <-m.buildSem }()
		unlock := m.locks.Lock(inst.UUID())
		defer unlock()
		// The build outlives the RPC handler; only agent shutdown may cut it short.
		bctx := context.WithoutCancel(ctx)
		m.doBuild(bctx, map[string]any(rctx), req, inst)
	}()
	return nil, nil
}

// doBuild is _do_build_and_run_instance with nova's failure handling: any failure records a
// fault, releases ports and allocations and leaves the instance in ERROR, never in BUILD.
func (m *Manager) doBuild(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance) {
	uuid := inst.UUID()
	log := m.log.With("instance", uuid, "request_id", req.Context.RequestID())
	ev := "compute__do_build_and_run_instance"
	if err := m.eventStart(ctx, rctx, uuid, ev); err != nil {
		log.Error("build: record action event", "err", err)
		return
	}
	start := time.Now()
	inst.SetVMState(objects.VMBuilding)
	inst.SetTaskState(objects.TaskNone)
	err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskScheduling, objects.TaskNone}})
	if err != nil {
		// Deleted or taken over before we started: nova gives up quietly.
		log.Info("build: instance gone or taken over before build", "err", err)
		if ferr := m.eventFinish(ctx, rctx, uuid, ev, nil); ferr != nil {
			log.Error("build: finish action event", "err", ferr)
		}
		m.deleteAllocations(ctx, uuid, log)
		return
	}
	var tm buildTimes
	vifs, err := m.buildAndRun(ctx, rctx, req, inst, log, &tm)
	var resched *rescheduled
	switch {
	case err == nil:
	case errors.As(err, &resched):
		if rerr := m.reschedule(ctx, rctx, req, inst, vifs, resched, log); rerr != nil {
			log.Warn("build not rescheduled", "reason", rerr)
			m.failBuild(ctx, rctx, inst, vifs, resched.fault(), log)
		}
	default:
		m.failBuild(ctx, rctx, inst, vifs, err, log)
	}
	if err == nil {
		log.Info("built instance", "seconds", time.Since(start).Seconds(),
			"network_s", tm.network.Seconds(), "image_s", tm.image.Seconds(), "spawn_s", tm.spawn.Seconds(),
			"plug_s", tm.plug.Seconds(), "vif_wait_s", tm.vifWait.Seconds())
	}
	m.mu.Lock()
	if err != nil {
		m.failedBuild++
	} else {
		m.failedBuild = 0
	}
	m.mu.Unlock()
	// Nova finishes the build event with success even when the build failed: the failure is
	// recorded as the instance fault and the ERROR state (the decorator sees no exception).
	if ferr := m.eventFinish(ctx, rctx, uuid, ev, nil); ferr != nil {
		log.Error("build: finish action event", "err", ferr)
	}
	// Usage changed: report it now rather than at the next periodic audit, as the resource
	// tracker's claim does.
	if err := m.UpdateAvailableResource(ctx); err != nil {
		log.Warn("resource audit after build", "err", err)
	}
}

// buildTimes splits a build's wall time into the phases that dominate it, for the "built
// instance" log line: where a slow boot spends its time is the first thing an operator asks.
type buildTimes struct {
	network, image, spawn time.Duration
	// plug and vifWait are part of spawn: putting the ports into the sandbox, then neutron's
	// network-vif-plugged round trip.
	plug, vifWait time.Duration
}

func (m *Manager) buildAndRun(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, log *slog.Logger, tm *buildTimes) ([]VIF, error) {
	uuid := inst.UUID()
	lc := m.lc
	if lc == nil {
		return nil, buildAborted(uuid, "this agent has no container driver configured", nil)
	}
	// Resource claim: the instance belongs to this host from now on, so neutron's events and
	// nova-api's actions route here.
	inst.SetHost(m.opts.Host)
	inst.SetLaunchedOn(m.opts.Host)
	inst.SetNode(m.opts.Host)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return nil, fmt.Errorf("claim instance: %w", err)
	}

	// Networking.
	inst.SetTaskState(objects.TaskNetworking)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskNone}}); err != nil {
		return nil, fmt.Errorf("set task state networking: %w", err)
	}
	reqs, err := networkRequests(req)
	if err != nil {
		return nil, buildAborted(uuid, "malformed requested_networks", err)
	}
	uctx := cloud.WithRequestID(cloud.WithUserToken(ctx, stringOf(rctx["auth_token"])), stringOf(rctx["global_request_id"]))
	net := &networkAPI{neutron: lc.Neutron, host: m.opts.Host, bridge: lc.Bridge}
	t0 := time.Now()
	vifs, err := net.allocate(uctx, inst, reqs)
	tm.network = time.Since(t0)
	if err != nil {
		return nil, buildAborted(uuid, "failed to allocate the network(s)", err)
	}
	for _, v := range vifs {
		vi := objects.New("VirtualInterface", mustZedVersion("VirtualInterface"))
		for k, val := range map[string]any{"address": v.Address, "uuid": v.ID, "instance_uuid": uuid, "tag": nil} {
			_ = vi.Set(k, val)
		}
		if _, err := m.cond.ObjectAction(ctx, rctx, vi, "create", nil, nil); err != nil {
			log.Warn("record virtual interface", "port", v.ID, "err", err)
		}
	}
	if err := m.saveNetworkInfo(ctx, rctx, uuid, vifs); err != nil {
		return vifs, err
	}

	// Block devices: only the image-backed root disk exists here.
	inst.SetTaskState(objects.TaskBlockDeviceMapping)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return vifs, fmt.Errorf("set task state block_device_mapping: %w", err)
	}
	if bdms, err := m.cond.BDMListGetByInstanceUUID(ctx, rctx, uuid); err == nil {
		for _, b := range bdms {
			if b.DestinationType() == "volume" {
				return vifs, buildAborted(uuid, "volumes are not supported by nova-container-agent", nil)
			}
			if idx, ok := b.BootIndex(); ok && idx == 0 && b.DeviceName() == "" {
				b.SetDeviceName("/dev/vda")
				if _, err := m.cond.ObjectAction(ctx, rctx, b.Object, "save", nil, nil); err != nil {
					log.Warn("save root device name", "err", err)
				}
			}
		}
	}
	inst.SetRootDeviceName("/dev/vda")
	inst.SetTaskState(objects.TaskSpawning)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskBlockDeviceMapping}}); err != nil {
		return vifs, fmt.Errorf("set task state spawning: %w", err)
	}

	// Spawn.
	t0 = time.Now()
	image, err := m.ensureImage(uctx, inst)
	tm.image = time.Since(t0)
	if err != nil {
		return vifs, buildAborted(uuid, "image could not be prepared", err)
	}
	sp, err := instanceSpec(inst, image, vifs)
	if err != nil {
		return vifs, buildAborted(uuid, "invalid instance", err)
	}
	t0 = time.Now()
	err = lc.Driver.Spawn(ctx, sp, m.plugAndWait(ctx, uuid, vifs, log, tm))
	tm.spawn = time.Since(t0)
	if err != nil {
		var vifErr *vifCreateFailed
		switch {
		case errors.As(err, &vifErr):
			return vifs, buildAborted(uuid, "Virtual Interface creation failed", err)
		case errors.Is(err, spec.ErrInvalid):
			// The flavor or instance cannot be a container anywhere: retrying elsewhere is futile.
			return vifs, buildAborted(uuid, "invalid instance", err)
		}
		// Anything else the driver raises is nova's RescheduledException.
		return vifs, &rescheduled{uuid: uuid, reason: "the container could not be started", err: err}
	}
	st, err := lc.Driver.GetState(ctx, uuid)
	if err != nil {
		return vifs, fmt.Errorf("read state of the new container: %w", err)
	}
	inst.SetPowerState(objects.PowerState(st.Power))
	inst.SetVMState(objects.VMActive)
	inst.SetTaskState(objects.TaskNone)
	inst.SetLaunchedAt(time.Now())
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskSpawning}}); err != nil {
		// Deleted while spawning: the delete path will remove the container; do not fault.
		if errors.Is(err, conductor.ErrUnexpectedState) || errors.Is(err, conductor.ErrNotFound) {
			log.Info("instance deleted during spawn", "err", err)
			return vifs, nil
		}
		return vifs, fmt.Errorf("mark instance active: %w", err)
	}
	return vifs, nil
}

// plugAndWait is the spawn's plug step: register for network-vif-plugged of every port that is
// not active yet, plug them into the sandbox's namespace before the instance's init starts,
// and wait for neutron to report them (nova's _get_neutron_events and wait_for_instance_event).
func (m *Manager) plugAndWait(ctx context.Context, uuid string, vifs []VIF, log *slog.Logger, tm *buildTimes) driver.PlugFunc {
	return func(pctx context.Context, netns string) (err error) {
		lc := m.lc
		defer func() {
			if err == nil {
				m.announce(ctx, netns, vifs, log)
			}
		}()
		waits := map[string]<-chan ExternalEvent{}
		for _, v := range vifs {
			if !v.Active {
				waits[v.ID] = m.events.Prepare(uuid, "network-vif-plugged-"+v.ID)
			}
		}
		defer m.events.Forget(uuid)
		t0 := time.Now()
		err = lc.Plugger.Plug(pctx, uuid, netns, vifs)
		tm.plug = time.Since(t0)
		if err != nil {
			return err
		}
		defer func() { tm.vifWait = time.Since(t0) - tm.plug }()
		if lc.VIFPluggingTimeout <= 0 || len(waits) == 0 {
			return nil
		}
		deadline := time.NewTimer(lc.VIFPluggingTimeout)
		defer deadline.Stop()
		for port, ch := range waits {
			select {
			case ev := <-ch:
				if ev.Status == "failed" && lc.VIFPluggingIsFatal {
					return &vifCreateFailed{fmt.Errorf("neutron reported plugging port %s failed", port)}
				}
			case <-deadline.C:
				if lc.VIFPluggingIsFatal {
					return &vifCreateFailed{fmt.Errorf("timed out after %s waiting for network-vif-plugged of port %s", lc.VIFPluggingTimeout, port)}
				}
				log.Warn("timed out waiting for network-vif-plugged; continuing (vif_plugging_is_fatal=false)", "port", port)
				return nil
			case <-pctx.Done():
				return pctx.Err()
			}
		}
		return nil
	}
}

// announce sends gratuitous ARPs for a new instance's addresses once neutron has wired its
// ports, three times a second apart in the background: the first may be lost while a fresh
// veth's queue is not yet active, and the build need not wait for any of them.
func (m *Manager) announce(ctx context.Context, netns string, vifs []VIF, log *slog.Logger) {
	if len(vifs) == 0 {
		return
	}
	pl := m.lc.Plugger
	m.builds.Add(1)
	go func() {
		defer m.builds.Done()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for i := 0; i < 3; i++ {
			if err := pl.Announce(actx, netns, vifs); err != nil {
				log.Debug("announce addresses", "err", err)
				return
			}
			select {
			case <-actx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// errNoRetry: the scheduler gave no retry information (the build was forced onto this host,
// or [scheduler] max_attempts is 1), so nova does not reschedule.
var errNoRetry = errors.New("no retry information in filter_properties: rescheduling is disabled for this build")

// reschedule is _do_build_and_run_instance's RescheduledException branch: release what this
// host took (container, ports, placement allocation), hand the instance back to scheduling
// and cast build_instances to the conductor with the remaining alternate hosts. The
// conductor tries the next alternate, or sets ERROR with MaxRetriesExceeded when none is left.
// It returns an error, having changed nothing the caller's failBuild cannot finish, when no
// reschedule is possible.
func (m *Manager) reschedule(ctx context.Context, rctx map[string]any, req *rpc.Request, inst *objects.Instance, vifs []VIF, cause *rescheduled, log *slog.Logger) error {
	var filter map[string]any
	if raw, ok := req.Args["filter_properties"]; ok && !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &filter); err != nil {
			return fmt.Errorf("decode filter_properties: %w", err)
		}
	}
	retry, ok := filter["retry"].(map[string]any)
	if !ok {
		return errNoRetry
	}
	// What the conductor logs and, at the end, shows as the fault.
	retry["exc"] = []string{"Traceback (most recent call last):\n", "  (raised by nova-container-agent)\n",
		"nova.exception.RescheduledException: " + cause.Error() + "\n"}
	retry["exc_reason"] = errorMessage(cause.reason, cause.err)
	log.Info("rescheduling the build", "reason", retry["exc_reason"])

	m.releaseBuild(ctx, rctx, inst, vifs, log)
	nilOutHostAndNode(inst)
	inst.SetTaskState(objects.TaskScheduling)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		return fmt.Errorf("hand the instance back to scheduling: %w", err)
	}
	// Unclaim before the cast so that an alternate host can claim the resources.
	m.deleteAllocations(ctx, inst.UUID(), log)

	args := map[string]any{"instances": []any{inst.Object}, "filter_properties": filter}
	for _, k := range []string{"image", "admin_password", "injected_files", "requested_networks", "security_groups", "request_spec"} {
		if raw, ok := req.Args[k]; ok {
			args[k] = raw
		} else {
			args[k] = nil
		}
	}
	hostList := json.RawMessage("[]")
	if raw, ok := req.Args["host_list"]; ok && !isJSONNull(raw) {
		hostList = raw
	}
	args["host_lists"] = []json.RawMessage{hostList}
	if err := m.cond.BuildInstances(ctx, rctx, args); err != nil {
		return err
	}
	return nil
}

// releaseBuild gives back what a failed build took on this host: the container and its
// sandbox, the ports' wiring, and the ports themselves (deleted if nova created them,
// unbound otherwise).
func (m *Manager) releaseBuild(ctx context.Context, rctx map[string]any, inst *objects.Instance, vifs []VIF, log *slog.Logger) {
	if m.lc == nil {
		return
	}
	uuid := inst.UUID()
	if err := m.lc.Driver.Destroy(ctx, uuid); err != nil {
		log.Warn("remove container of failed build", "err", err)
	}
	if len(vifs) > 0 {
		if err := m.lc.Plugger.Unplug(ctx, uuid, vifs); err != nil {
			log.Warn("unplug ports of failed build", "err", err)
		}
	}
	uctx := cloud.WithUserToken(ctx, stringOf(rctx["auth_token"]))
	net := &networkAPI{neutron: m.lc.Neutron, host: m.opts.Host, bridge: m.lc.Bridge}
	if err := net.deallocate(uctx, uuid, vifs); err != nil {
		log.Warn("release ports of failed build", "err", err)
	}
}

// nilOutHostAndNode is _nil_out_instance_obj_host_and_node: a build that failed here leaves
// the instance on no host, hence in no host aggregate and no availability zone.
func nilOutHostAndNode(inst *objects.Instance) {
	inst.SetHost("")
	inst.SetNode("")
	inst.SetLaunchedOn("")
	inst.SetAvailabilityZone("")
}

// failBuild is the tail of _do_build_and_run_instance's exception handling.
func (m *Manager) failBuild(ctx context.Context, rctx map[string]any, inst *objects.Instance, vifs []VIF, buildErr error, log *slog.Logger) {
	uuid := inst.UUID()
	log.Error("build failed", "err", buildErr)
	m.releaseBuild(ctx, rctx, inst, vifs, log)
	m.addFault(ctx, rctx, uuid, buildErr)
	nilOutHostAndNode(inst)
	inst.SetVMState(objects.VMError)
	inst.SetTaskState(objects.TaskNone)
	if err := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); err != nil {
		log.Error("set instance to ERROR", "err", err)
	}
	m.deleteAllocations(ctx, uuid, log)
}

func (m *Manager) deleteAllocations(ctx context.Context, uuid string, log *slog.Logger) {
	if _, err := m.placement.DeleteConsumerAllocations(ctx, uuid); err != nil {
		log.Warn("delete allocations", "err", err)
	}
}

// ensureImage resolves the instance's Glance image to a local container image.
func (m *Manager) ensureImage(ctx context.Context, inst *objects.Instance) (string, error) {
	lc := m.lc
	id := inst.ImageRef()
	if id == "" {
		return "", errors.New("the instance has no image (boot from volume is not supported)")
	}
	img, err := lc.Glance.GetImage(ctx, id)
	if err != nil {
		return "", fmt.Errorf("read image %s: %w", id, err)
	}
	switch img.DiskFormat {
	case "qcow2", "raw":
	default:
		return "", fmt.Errorf("image %s has disk_format %q; this host accepts qcow2 and raw", id, img.DiskFormat)
	}
	sum, err := store.FromGlance(img.OSHashAlgo, img.OSHashValue, img.Checksum)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", id, err)
	}
	return lc.Images.Ensure(ctx, id, sum, func(ctx context.Context) (io.ReadCloser, int64, error) {
		d, err := lc.Glance.DownloadImage(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		return d.Body, d.Size, nil
	})
}

// instanceSpec describes the instance for the container driver.
func instanceSpec(inst *objects.Instance, image string, vifs []VIF) (spec.Instance, error) {
	fl, err := inst.Flavor()
	if err != nil || fl == nil {
		return spec.Instance{}, fmt.Errorf("instance has no flavor: %v", err)
	}
	var keys []string
	for _, k := range strings.Split(inst.KeyData(), "\n") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	var dns []string
	for _, v := range vifs {
		for _, s := range v.Network.Subnets {
			for _, d := range s.DNS {
				if d.Address != nil {
					dns = append(dns, *d.Address)
				}
			}
		}
	}
	host := inst.Hostname()
	if host == "" {
		host = "instance-" + inst.UUID()[:8]
	}
	return spec.Instance{
		UUID: inst.UUID(), Hostname: host, Image: image, ImageID: inst.ImageRef(),
		Flavor: spec.Flavor{Name: fl.Name(), VCPUs: int(fl.VCPUs()), MemoryMB: fl.MemoryMB(), RootGB: int(fl.RootGB()),
			DedicatedCPUs: ""},
		DNS: dns, AuthorizedKeys: keys,
	}, nil
}

func networkRequests(req *rpc.Request) ([]*objects.NetworkRequest, error) {
	raw, ok := req.Args["requested_networks"]
	if !ok || isJSONNull(raw) {
		return nil, nil
	}
	o, err := objects.ObjectFrom(raw)
	if err != nil {
		return nil, err
	}
	return objects.NetworkRequests(o)
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func mustZedVersion(name string) string {
	v, _ := objects.ZedVersion(name)
	return v
}
