package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// Binary and Topic are the service identity nova-api lists and routes by.
const (
	Binary = "nova-compute"
	Topic  = "compute"
)

// Placement is the part of the placement API the resource tracker and instance lifecycle use.
// Implementations handle resource provider generations and retry on generation conflicts.
type Placement interface {
	EnsureProvider(ctx context.Context, uuid, name string) (*cloud.ResourceProvider, error)
	UpdateInventories(ctx context.Context, uuid string, build func(current cloud.Inventories) cloud.Inventories) (int, error)
	UpdateProviderTraits(ctx context.Context, uuid string, build func(current []string) []string) (int, error)
	DeleteConsumerAllocations(ctx context.Context, consumer string) (bool, error)
}

var _ Placement = (*cloud.Placement)(nil)

// Options configure a Manager; cmd/nova-container-agent maps nova.conf onto them.
type Options struct {
	Host           string
	HostIP         string
	StatePath      string // where the compute node uuid is persisted
	InstancesPath  string
	ProcRoot       string // normally /proc; tests point it at fixtures
	ReportInterval time.Duration
	// UpdateResourcesInterval is update_resources_interval; nova's default 0 means the periodic
	// task's default spacing of 60 s.
	UpdateResourcesInterval time.Duration
	Ratios                  Ratios
	Reserved                Reserved
	// HypervisorVersion is Docker's engine version, packed (see PackVersion).
	HypervisorVersion int
	// ResumeGuestsStateOnHostBoot restarts instances that were running before the host went
	// down (nova's option of the same name).
	ResumeGuestsStateOnHostBoot bool
}

// Manager is the compute manager: it registers the host, keeps its records current and serves
// the compute RPC API.
type Manager struct {
	opts      Options
	cond      *conductor.Client
	placement Placement
	log       *slog.Logger
	now       func() time.Time

	mu          sync.Mutex
	service     *objects.Service
	computeNode *objects.ComputeNode
	failedBuild int
	// locks serialise lifecycle operations per instance, as nova's utils.synchronized(uuid) does.
	locks  keyedMutex
	events instanceEvents

	lc       *Lifecycle
	builds   sync.WaitGroup
	buildSem chan struct{}
}

// SetLifecycle gives the manager the container driver and the services instance operations
// need. Without it the host registers and answers RPC, and builds fail with a clear fault.
func (m *Manager) SetLifecycle(lc *Lifecycle) {
	n := lc.MaxConcurrentBuilds
	if n <= 0 {
		n = 10
	}
	m.lc = lc
	m.buildSem = make(chan struct{}, n)
	if lc.Replug != nil {
		lc.Replug.m.Store(m)
	}
}

// Wait blocks until builds running in the background have finished.
func (m *Manager) Wait() { m.builds.Wait() }

// New validates the options and returns a Manager.
func New(opts Options, cond *conductor.Client, placement Placement, log *slog.Logger) (*Manager, error) {
	if opts.Host == "" {
		return nil, errors.New("new compute manager: host is empty")
	}
	if opts.StatePath == "" || opts.InstancesPath == "" {
		return nil, errors.New("new compute manager: state_path and instances_path are required")
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.ReportInterval <= 0 {
		opts.ReportInterval = 10 * time.Second
	}
	if opts.UpdateResourcesInterval <= 0 {
		opts.UpdateResourcesInterval = 60 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Manager{opts: opts, cond: cond, placement: placement, log: log, now: time.Now,
		buildSem: make(chan struct{}, 10)}, nil
}

// adminContext is the context nova-compute uses for its own work (nova.context.get_admin_context).
func (m *Manager) adminContext() map[string]any {
	return conductor.AdminContext(m.now(), conductor.NewRequestID())
}

// Start performs nova-compute's startup sequence against the conductor (protocols §4.3): it
// checks the cloud's minimum compute version, registers the service and the compute node and
// reports inventory to placement. The RPC server is started by the caller afterwards, as nova does.
func (m *Manager) Start(ctx context.Context) error {
	actx := m.adminContext()
	minVersion, err := m.cond.ServiceGetMinimumVersion(ctx, actx, Binary)
	if err != nil {
		return fmt.Errorf("read minimum compute service version: %w", err)
	}
	if minVersion > objects.ServiceVersion {
		return fmt.Errorf("cloud runs nova-compute version %d, newer than this agent's %d: upgrade the agent", minVersion, objects.ServiceVersion)
	}
	if err := m.ensureService(ctx, actx); err != nil {
		return err
	}
	if err := m.UpdateAvailableResource(ctx); err != nil {
		return err
	}
	return nil
}

// RunPeriodic runs the heartbeat and resource audit loops until ctx is done. Failures are logged
// and retried on the next tick: a conductor or RabbitMQ outage must not stop the agent.
func (m *Manager) RunPeriodic(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	// nova's servicegroup db driver sends the first report after 5 s, then every report_interval.
	go func() {
		defer wg.Done()
		m.every(ctx, "report_state", 5*time.Second, m.opts.ReportInterval, m.Heartbeat)
	}()
	go func() {
		defer wg.Done()
		m.every(ctx, "update_available_resource", m.opts.UpdateResourcesInterval, m.opts.UpdateResourcesInterval, m.UpdateAvailableResource)
	}()
	wg.Wait()
}

// every runs fn after first and then every interval until ctx ends, logging failures: a
// periodic task that fails (conductor or RabbitMQ away) is simply tried again on the next tick.
func (m *Manager) every(ctx context.Context, name string, first, interval time.Duration, fn func(context.Context) error) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("periodic task failed", "task", name, "err", err)
		}
		t.Reset(interval)
	}
}

// remoteClass returns the Python exception class of a failure returned by the conductor, or "".
func remoteClass(err error) string {
	if c, ok := conductor.ExceptionClass(err); ok {
		return c
	}
	var f *rpc.Failure
	if errors.As(err, &f) {
		return f.Class
	}
	return ""
}

// keyedMutex hands out one mutex per key and forgets it when nobody holds or waits for it.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
