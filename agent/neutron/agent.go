package neutron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/ovs"
)

// Agent is this host's neutron OVS L2 agent. Create it with NewAgent, start it with Run, and
// call Resync after plugging a port to have it processed at once.
type Agent struct {
	cfg  Config
	host string
	srv  *server
	conn RPC
	pts  Ports
	dp   Dataplane
	log  *slog.Logger
	now  func() time.Time

	wake chan struct{} // capacity 1: "a pass is wanted"

	mu          sync.Mutex
	running     bool
	started     bool
	pending     map[string][]chan error // ports to (re)process -> Resync waiters
	pendingNets map[string]bool         // networks whose ports must be reprocessed
	deleted     map[string]bool         // port_delete notifications not handled yet
	fullSync    bool
	firstPass   bool // the first full sync finished (start_flag may go)
	devCount    int  // ports seen on the bridge at the last scan ("devices")

	// Owned by the device loop goroutine.
	devices   map[string]*device
	downRetry map[string]bool // removed devices whose devices_down did not reach the server
	iter      int
}

// notReadyRetry is how soon a pass runs again when a port Resync waits for has no ofport yet.
const notReadyRetry = 100 * time.Millisecond

// device is a port the loop has processed.
type device struct {
	rec ovs.PortRecord
	// network is the network it is bound to; "" when isolated.
	network string
}

// NewAgent returns an agent reporting for host (nova's [DEFAULT] host, which neutron stores as
// binding:host_id) over conn. In ModeCompat ports and dp may be nil: nothing is ever sent.
func NewAgent(conn RPC, host string, cfg Config, ports Ports, dp Dataplane, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeFull
	}
	if host == "" {
		return nil, fmt.Errorf("neutron agent: empty host: %w", ErrInvalidConfig)
	}
	if cfg.Mode == ModeFull && (conn == nil || ports == nil || dp == nil) {
		return nil, fmt.Errorf("neutron agent: full mode needs an RPC connection, ports and a dataplane: %w", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{
		cfg: cfg, host: host, conn: conn, pts: ports, dp: dp,
		log:  log.With("component", "neutron-agent", "host", host),
		now:  time.Now,
		wake: make(chan struct{}, 1),

		pending: map[string][]chan error{}, pendingNets: map[string]bool{}, deleted: map[string]bool{},
		fullSync: true, devices: map[string]*device{}, downRetry: map[string]bool{},
	}
	a.srv = &server{conn: conn, exchange: cfg.Exchange, host: host, agentID: "ovs-agent-" + host,
		rctx: newAdminContext(time.Now()), timeout: cfg.RPCTimeout}
	return a, nil
}

// Mode returns the agent's mode.
func (a *Agent) Mode() Mode { return a.cfg.Mode }

// Run plays the L2 agent until ctx is done, then returns nil. In ModeCompat it returns nil at
// once without sending anything. It fails only when the dataplane cannot start or an RPC
// consumer cannot be set up (for instance queue flags that differ from the broker's).
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Mode == ModeCompat {
		a.log.Info("neutron agent in compat mode: neutron-openvswitch-agent owns tags and flows")
		return nil
	}
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return fmt.Errorf("neutron agent: Run called twice")
	}
	a.started = true
	a.mu.Unlock()

	if err := a.dp.Start(ctx); err != nil {
		return fmt.Errorf("neutron agent: start dataplane: %w", err)
	}
	if err := a.waitForServer(ctx); err != nil {
		return nil // ctx done
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	spawn := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	disp := rpc.NewDispatcher(rpc.Endpoint{Version: versionAgent, Methods: map[string]rpc.HandlerFunc{
		"port_update":    a.handlePortUpdate,
		"port_delete":    a.handlePortDelete,
		"network_update": a.handleNetworkUpdate,
	}})
	for _, topic := range []string{topicPortUpdate, topicPortDelete, topicNetworkUpdate} {
		t := rpc.Target{Exchange: a.cfg.Exchange, Topic: topic, Server: a.host}
		spawn(func(ctx context.Context) error {
			if err := a.conn.Serve(ctx, t, disp); err != nil {
				return fmt.Errorf("neutron agent: consume %s: %w", t.Topic, err)
			}
			return nil
		})
	}
	a.mu.Lock()
	a.running = true
	a.mu.Unlock()
	if a.cfg.ReportInterval > 0 {
		spawn(a.reportLoop)
	} else {
		a.log.Warn("report_interval is 0: neutron will consider this agent dead and bind no port here")
	}
	spawn(a.deviceLoop)

	<-ctx.Done()
	wg.Wait()
	a.mu.Lock()
	a.running = false
	for id, ws := range a.pending {
		for _, w := range ws {
			w <- ErrNotRunning
		}
		delete(a.pending, id)
	}
	a.mu.Unlock()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitForServer calls has_alive_neutron_server until it answers (setup_rpc's loop); it returns
// an error only when ctx is done.
func (a *Agent) waitForServer(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := a.srv.hasAliveServer(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("l2 agent cannot contact neutron server, retrying", "error", err)
		if !errors.Is(err, rpc.ErrTimeout) {
			// A timeout already waited RPCTimeout; other failures come back at once.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(time.Second<<min(attempt, 5), 30*time.Second)):
			}
		}
	}
}

// Resync asks for the port to be processed now (details, tag, flows, devices_up) instead of at
// the next poll, and waits for the outcome: nil when the port was reported up, ErrNotBound or
// ErrAdminDown when it was isolated, ErrPortNotFound when it is not on the integration bridge.
// Transient failures (RPC, OVSDB) are retried by the loop and keep Resync waiting until ctx is
// done. In ModeCompat it returns nil at once: the port is neutron's agent's business.
func (a *Agent) Resync(ctx context.Context, portID string) error {
	if a.cfg.Mode == ModeCompat {
		return nil
	}
	w := make(chan error, 1)
	a.mu.Lock()
	if !a.running {
		a.mu.Unlock()
		return fmt.Errorf("resync port %s: %w", portID, ErrNotRunning)
	}
	a.pending[portID] = append(a.pending[portID], w)
	a.mu.Unlock()
	a.kick()
	select {
	case err := <-w:
		if err != nil {
			return fmt.Errorf("resync port %s: %w", portID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("resync port %s: %w", portID, ctx.Err())
	}
}

// kick wakes the device loop without blocking.
func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// markPorts queues ports for reprocessing (notifications).
func (a *Agent) markPort(id string) {
	a.mu.Lock()
	if _, ok := a.pending[id]; !ok {
		a.pending[id] = nil
	}
	a.mu.Unlock()
	a.kick()
}

// reportLoop is _report_state on a FixedIntervalLoopingCall: at once, then every interval.
func (a *Agent) reportLoop(ctx context.Context) error {
	startFlag, versions := true, true
	t := time.NewTicker(a.cfg.ReportInterval)
	defer t.Stop()
	for {
		a.mu.Lock()
		devices, firstPass := a.devCount, a.firstPass
		a.mu.Unlock()
		st := agentState(a.cfg, a.host, stateReport{devices: devices, startFlag: startFlag, resourceVersions: versions})
		status, err := a.srv.reportState(ctx, st, a.now(), a.cfg.ReportInterval)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			a.log.Warn("failed reporting state", "error", err)
		default:
			versions = false
			if firstPass {
				// The agent counts as started once its first full sync is done.
				startFlag = false
			}
			if status == stateRevived {
				a.log.Info("agent has just been revived, doing a full sync")
				a.mu.Lock()
				a.fullSync = true
				a.mu.Unlock()
				a.kick()
			} else if status != stateAlive && status != stateNew {
				a.log.Warn("unexpected report_state answer", "status", status)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// deviceLoop is rpc_loop: a pass at once (full sync), then on every wake-up or poll tick.
func (a *Agent) deviceLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.PollingInterval)
	defer t.Stop()
	for {
		if err := a.pass(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("device pass failed, retrying at the next poll", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-t.C:
		}
	}
}

// work is what one pass takes over from the shared state.
type work struct {
	waiters  map[string][]chan error
	nets     map[string]bool
	deleted  map[string]bool
	fullSync bool
}

func (a *Agent) takeWork() work {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := work{waiters: a.pending, nets: a.pendingNets, deleted: a.deleted, fullSync: a.fullSync}
	a.pending, a.pendingNets, a.deleted, a.fullSync = map[string][]chan error{}, map[string]bool{}, map[string]bool{}, false
	return w
}

// giveBack requeues ports whose processing failed transiently, with their waiters.
func (a *Agent) giveBack(ids []string, w work) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.pending[id] = append(a.pending[id], w.waiters[id]...)
		delete(w.waiters, id)
	}
}

// pass is one iteration of neutron's rpc_loop: scan, treat removed, treat added/updated,
// report.
func (a *Agent) pass(ctx context.Context) error {
	recs, err := a.pts.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("scan %s: %w", a.cfg.IntegrationBridge, err)
	}
	current := map[string]ovs.PortRecord{}
	notReady := map[string]bool{}
	for _, r := range recs {
		if r.PortID == "" || r.MAC == "" {
			continue
		}
		// get_vif_port_set: only interfaces with a usable ofport; ports vswitchd has not
		// numbered yet are retried shortly (ports_not_ready_yet).
		if r.OFPort <= 0 {
			notReady[r.PortID] = true
			continue
		}
		current[r.PortID] = r
	}
	w := a.takeWork()
	a.mu.Lock()
	a.devCount = len(current)
	a.mu.Unlock()
	results := map[string]error{}
	defer func() { a.answer(w, results) }()

	// Removed ports (treat_devices_removed).
	var down []string
	removedNets := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(a.devices)) {
		d := a.devices[id]
		if r, ok := current[id]; ok && r.Name == d.rec.Name && r.OFPort == d.rec.OFPort {
			continue
		}
		if _, ok := current[id]; ok {
			// Re-plugged under another name or ofport: treated as added below.
			delete(a.devices, id)
			if d.network != "" {
				removedNets[d.network] = true
			}
			continue
		}
		a.log.Info("port removed from the integration bridge", "port", id, "bridge", a.cfg.IntegrationBridge)
		delete(a.devices, id)
		if d.network != "" {
			removedNets[d.network] = true
		}
		down = append(down, id)
	}
	for id := range a.downRetry {
		if _, back := current[id]; !back && !slices.Contains(down, id) {
			down = append(down, id)
		}
		delete(a.downRetry, id)
	}
	slices.Sort(down)

	// Deleted in neutron but still plugged: dead VLAN (process_deleted_ports / port_dead).
	for id := range w.deleted {
		r, ok := current[id]
		if !ok {
			continue
		}
		if err := a.dp.IsolatePort(ctx, r); err != nil {
			a.log.Warn("isolate deleted port", "port", id, "error", err)
		}
		if d := a.devices[id]; d != nil && d.network != "" {
			removedNets[d.network] = true
		}
		a.devices[id] = &device{rec: r}
		results[id] = fmt.Errorf("port deleted in neutron: %w", ErrNotBound)
	}

	// Added or updated ports.
	var fetch []string
	for _, id := range slices.Sorted(maps.Keys(current)) {
		if w.deleted[id] {
			continue
		}
		d, known := a.devices[id]
		_, asked := w.waiters[id]
		if !known || asked || w.fullSync || (d.network != "" && w.nets[d.network]) {
			fetch = append(fetch, id)
		}
	}
	var waitOFPort []string
	for id := range w.waiters {
		if _, ok := current[id]; ok || w.deleted[id] {
			continue
		}
		if notReady[id] {
			waitOFPort = append(waitOFPort, id)
			continue
		}
		results[id] = ErrPortNotFound
	}
	if len(waitOFPort) > 0 {
		a.giveBack(waitOFPort, w)
		time.AfterFunc(notReadyRetry, a.kick)
	}

	var up, requeue []string
	for chunk := range slices.Chunk(fetch, a.cfg.ProcessingStep) {
		reply, err := a.srv.devicesDetails(ctx, chunk)
		if err != nil {
			requeue = append(requeue, chunk...)
			a.log.Warn("device details failed, will retry", "error", err, "devices", len(chunk))
			continue
		}
		requeue = append(requeue, reply.FailedDevices...)
		answered := map[string]bool{}
		for _, id := range reply.FailedDevices {
			answered[id] = true
		}
		for _, det := range reply.Devices {
			r, ok := current[det.Device]
			if !ok || !slices.Contains(chunk, det.Device) || answered[det.Device] {
				continue // not one we asked about, or a duplicate
			}
			answered[det.Device] = true
			switch res, err := a.treat(ctx, r, det); {
			case err != nil:
				a.log.Warn("port processing failed, will retry", "port", det.Device, "error", err)
				requeue = append(requeue, det.Device)
			case res == nil:
				up = append(up, det.Device)
			case errors.Is(res, ErrAdminDown):
				down = append(down, det.Device)
				results[det.Device] = res
			default:
				results[det.Device] = res
			}
		}
		for _, id := range chunk {
			if !answered[id] {
				a.log.Warn("neutron-server returned no details for a device, will retry", "port", id)
				requeue = append(requeue, id)
			}
		}
	}

	// Network VLANs left without ports (reclaim_local_vlan) and stale flows.
	for nid := range removedNets {
		if !a.networkInUse(nid) {
			if err := a.dp.ReleaseNetwork(ctx, nid); err != nil {
				a.log.Warn("release local vlan", "network", nid, "error", err)
			}
		}
	}
	if len(removedNets) > 0 || len(down) > 0 {
		if err := a.dp.SyncFlows(ctx); err != nil {
			a.log.Warn("sync flows after removal", "error", err)
		}
	}

	refresh := a.iter == 0
	var rpcErr error
	upChunks, downChunks := slices.Collect(slices.Chunk(up, a.cfg.ProcessingStep)), slices.Collect(slices.Chunk(down, a.cfg.ProcessingStep))
	for i := 0; i < max(len(upChunks), len(downChunks)); i++ {
		var u, dn []string
		if i < len(upChunks) {
			u = upChunks[i]
		}
		if i < len(downChunks) {
			dn = downChunks[i]
		}
		reply, err := a.srv.updateDeviceList(ctx, u, dn, refresh)
		if err != nil {
			rpcErr = err
			requeue = append(requeue, u...)
			for _, id := range dn {
				a.downRetry[id] = true
			}
			continue
		}
		requeue = append(requeue, reply.FailedDevicesUp...)
		for _, id := range reply.FailedDevicesDown {
			a.downRetry[id] = true
		}
		for _, id := range reply.DevicesUp {
			if _, ok := results[id]; !ok {
				results[id] = nil
			}
		}
	}
	if len(requeue) > 0 {
		slices.Sort(requeue)
		requeue = slices.Compact(requeue)
		for _, id := range requeue {
			delete(a.devices, id) // processed again from scratch
			delete(results, id)
		}
		a.giveBack(requeue, w)
	}
	a.iter++
	if len(requeue) == 0 && rpcErr == nil {
		a.mu.Lock()
		a.firstPass = true
		a.mu.Unlock()
	}
	if rpcErr != nil {
		return rpcErr
	}
	if len(requeue) > 0 {
		return fmt.Errorf("%d devices to retry", len(requeue))
	}
	return nil
}

// answer wakes the Resync waiters of ports that got a definite outcome.
func (a *Agent) answer(w work, results map[string]error) {
	for id, ws := range w.waiters {
		res, ok := results[id]
		if !ok {
			// Processed without a definite outcome recorded (e.g. already up and unchanged).
			res = nil
		}
		for _, c := range ws {
			c <- res
		}
	}
}

func (a *Agent) networkInUse(nid string) bool {
	for _, d := range a.devices {
		if d.network == nid {
			return true
		}
	}
	return false
}

// treat applies one port's details (treat_devices_added_or_updated + treat_vif_port). It
// returns (nil, nil) for a port to report up, (outcome, nil) for a port isolated on purpose,
// and (_, err) for a transient failure to retry.
func (a *Agent) treat(ctx context.Context, r ovs.PortRecord, det deviceDetails) (outcome error, err error) {
	log := a.log.With("port", r.PortID, "bridge", a.cfg.IntegrationBridge)
	prev := a.devices[r.PortID]
	isolate := func(why error) (error, error) {
		if err := a.dp.IsolatePort(ctx, r); err != nil {
			return nil, err
		}
		a.devices[r.PortID] = &device{rec: r}
		return why, nil
	}
	if det.PortID == "" || det.NetworkID == "" {
		if det.NoActiveBinding {
			log.Info("port has no active binding on this host, isolating it")
		} else {
			log.Warn("port not defined on plugin or binding failed, isolating it")
		}
		return isolate(ErrNotBound)
	}
	if det.AdminStateUp != nil && !*det.AdminStateUp {
		log.Info("port admin state down, putting it on the dead vlan")
		return isolate(ErrAdminDown)
	}
	b := ovs.Binding{NetworkID: det.NetworkID, NetworkType: det.NetworkType, PhysicalNetwork: det.PhysicalNetwork}
	if det.SegmentationID != nil {
		b.SegmentationID = *det.SegmentationID
	}
	if err := b.Validate(); err != nil {
		log.Error("cannot provide the port's segment, isolating it", "error", err)
		return isolate(fmt.Errorf("%v: %w", err, ErrNotBound))
	}
	if _, ok := a.cfg.BridgeMappings[b.PhysicalNetwork]; !ok {
		log.Error("physical network not in bridge_mappings, isolating the port", "physical_network", b.PhysicalNetwork)
		return isolate(fmt.Errorf("physical network %s not mapped on this host: %w", b.PhysicalNetwork, ErrNotBound))
	}
	vlan, err := a.dp.BindPort(ctx, r, b)
	if err != nil {
		return nil, err
	}
	a.devices[r.PortID] = &device{rec: r, network: b.NetworkID}
	if prev != nil && prev.network != "" && prev.network != b.NetworkID && !a.networkInUse(prev.network) {
		if err := a.dp.ReleaseNetwork(ctx, prev.network); err != nil {
			log.Warn("release local vlan of the previous network", "network", prev.network, "error", err)
		}
	}
	log.Info("port bound", "network", b.NetworkID, "local_vlan", vlan, "network_type", b.NetworkType,
		"physical_network", b.PhysicalNetwork, "segmentation_id", b.SegmentationID)
	return nil, nil
}
