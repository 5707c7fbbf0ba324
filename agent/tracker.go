package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// computeIDFile keeps the compute node uuid across restarts and reinstalls of the agent, so the
// placement resource provider (which shares the uuid) and its allocations stay attached to this host.
const computeIDFile = "compute_id"

// nodeUUID returns the persisted compute node uuid, creating one on first start.
func (m *Manager) nodeUUID() (string, error) {
	path := filepath.Join(m.opts.StatePath, computeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("compute node uuid in %s is corrupt (%q): fix or remove the file", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read compute node uuid: %w", err)
	}
	id := uuid.NewString()
	return id, m.persistNodeUUID(id)
}

func (m *Manager) persistNodeUUID(id string) error {
	if err := os.MkdirAll(m.opts.StatePath, 0o755); err != nil {
		return fmt.Errorf("create state_path: %w", err)
	}
	path := filepath.Join(m.opts.StatePath, computeIDFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return fmt.Errorf("persist compute node uuid: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("persist compute node uuid: %w", err)
	}
	return nil
}

// UpdateAvailableResource is nova's update_available_resource periodic task: audit this host's
// capacity and the instances on it, save the compute node record when anything but updated_at
// changed, and bring placement's inventory and traits in line (protocols §5).
func (m *Manager) UpdateAvailableResource(ctx context.Context) error {
	actx := m.adminContext()
	facts, err := ReadHostFacts(m.opts.ProcRoot, m.opts.InstancesPath)
	if err != nil {
		return fmt.Errorf("audit host resources: %w", err)
	}
	facts.HypervisorVersion = m.opts.HypervisorVersion
	usage, err := m.instanceUsage(ctx, actx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	failed := m.failedBuild
	m.mu.Unlock()
	usage.Stats["failed_builds"] = fmt.Sprint(failed)
	fields := ComputeNodeFields(m.opts.Host, m.opts.HostIP, facts, m.opts.Ratios, m.opts.Reserved, usage)

	cn, err := m.ensureComputeNode(ctx, actx, fields)
	if err != nil {
		return err
	}
	if err := m.syncPlacement(ctx, actx, cn, facts); err != nil {
		return err
	}
	return nil
}

func (m *Manager) instanceUsage(ctx context.Context, actx map[string]any) (Usage, error) {
	insts, err := m.cond.InstanceListGetByHostAndNode(ctx, actx, m.opts.Host, m.opts.Host,
		[]string{"system_metadata", "numa_topology", "flavor", "migration_context", "resources"})
	if err != nil {
		return Usage{}, fmt.Errorf("list instances of %s: %w", m.opts.Host, err)
	}
	var use, held []InstanceUsage
	for _, in := range insts {
		if in.Deleted() || in.VMState() == objects.VMDeleted {
			continue
		}
		u := InstanceUsage{VMState: string(in.VMState()), TaskState: string(in.TaskState()), ProjectID: in.ProjectID()}
		if fl, err := in.Flavor(); err == nil && fl != nil {
			u.VCPUs, u.MemoryMB = int(fl.VCPUs()), int(fl.MemoryMB())
			u.RootGB, u.EphemeralGB, u.SwapMB = int(fl.RootGB()), int(fl.EphemeralGB()), int(fl.SwapMB())
		} else {
			u.VCPUs, u.MemoryMB, u.RootGB, u.EphemeralGB = int(in.VCPUs()), int(in.MemoryMB()), int(in.RootGB()), int(in.EphemeralGB())
		}
		use = append(use, u)
		if h, ok := ResizeHeldUsage(in); ok {
			held = append(held, h)
		}
	}
	usage := CountUsage(use, 0)
	// A resize in progress also holds its other flavor (_update_usage_from_migrations): it
	// counts in the resources, not in the per-instance stats.
	for _, h := range held {
		usage.VCPUs += h.VCPUs
		usage.MemoryMB += h.MemoryMB
		usage.DiskGB += h.RootGB + h.EphemeralGB + h.SwapMB/1024
	}
	return usage, nil
}

// ensureComputeNode finds or creates this host's ComputeNode and saves it when the audit changed
// anything, like ResourceTracker._init_compute_node and _update.
func (m *Manager) ensureComputeNode(ctx context.Context, actx map[string]any, fields map[string]any) (*objects.ComputeNode, error) {
	m.mu.Lock()
	node := m.computeNode
	m.mu.Unlock()
	if node == nil {
		var err error
		node, err = m.cond.ComputeNodeGetByHostAndNodename(ctx, actx, m.opts.Host, m.opts.Host)
		switch {
		case errors.Is(err, conductor.ErrNotFound):
			return m.createComputeNode(ctx, actx, fields)
		case err != nil:
			return nil, fmt.Errorf("read compute node %s: %w", m.opts.Host, err)
		}
	}
	// The record is the source of truth for the uuid: if the state file was lost, adopt the
	// record's uuid rather than orphaning the resource provider and its allocations.
	if id, _ := m.nodeUUID(); id != node.UUID() && node.UUID() != "" {
		m.log.Warn("compute node uuid differs from state file; adopting the record's", "record", node.UUID(), "file", id)
		if err := m.persistNodeUUID(node.UUID()); err != nil {
			return nil, err
		}
	}
	changed := false
	for k, v := range fields {
		c, err := setIfChanged(node.Object, k, v)
		if err != nil {
			return nil, err
		}
		changed = changed || c
	}
	if changed {
		if err := m.cond.ComputeNodeSave(ctx, actx, node); err != nil {
			m.mu.Lock()
			m.computeNode = nil // re-read next time: our copy may be stale
			m.mu.Unlock()
			return nil, fmt.Errorf("save compute node %s: %w", m.opts.Host, err)
		}
	}
	m.mu.Lock()
	m.computeNode = node
	m.mu.Unlock()
	return node, nil
}

func (m *Manager) createComputeNode(ctx context.Context, actx map[string]any, fields map[string]any) (*objects.ComputeNode, error) {
	id, err := m.nodeUUID()
	if err != nil {
		return nil, err
	}
	node := objects.NewComputeNode()
	for k, v := range fields {
		// free_*, running_vms, current_workload, metrics and pci pools are filled by the first
		// save, as in nova: create carries only what update_from_virt_driver sets.
		switch k {
		case "free_ram_mb", "free_disk_gb", "running_vms", "current_workload", "metrics":
			continue
		}
		if err := node.Set(k, v); err != nil {
			return nil, err
		}
	}
	if err := node.Set("uuid", id); err != nil {
		return nil, err
	}
	if err := node.Set("supported_hv_specs", []*objects.Object{objects.NewHVSpec(novaArchOf(fields), HypervisorType, VMMode)}); err != nil {
		return nil, err
	}
	if err := m.cond.ComputeNodeCreate(ctx, actx, node); err != nil {
		return nil, fmt.Errorf("create compute node %s: %w", m.opts.Host, err)
	}
	m.log.Info("created compute node", "host", m.opts.Host, "node_uuid", node.UUID())
	// The remaining usage fields are saved right away, as nova's first audit does.
	for _, k := range []string{"free_ram_mb", "free_disk_gb", "running_vms", "current_workload", "metrics"} {
		if _, err := setIfChanged(node.Object, k, fields[k]); err != nil {
			return nil, err
		}
	}
	if err := m.cond.ComputeNodeSave(ctx, actx, node); err != nil {
		return nil, fmt.Errorf("save compute node %s: %w", m.opts.Host, err)
	}
	m.mu.Lock()
	m.computeNode = node
	m.mu.Unlock()
	return node, nil
}

func novaArchOf(fields map[string]any) string {
	var ci struct {
		Arch string `json:"arch"`
	}
	if s, ok := fields["cpu_info"].(string); ok {
		_ = json.Unmarshal([]byte(s), &ci)
	}
	if ci.Arch == "" {
		return "x86_64"
	}
	return ci.Arch
}

// setIfChanged sets field only when its JSON value differs, so that save is sent only when the
// audit found a real change (ResourceTracker._resource_change).
func setIfChanged(o *objects.Object, field string, v any) (bool, error) {
	want, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode %s.%s: %w", o.Name, field, err)
	}
	if cur, ok := o.Data[field]; ok && jsonEqual(cur, want) {
		return false, nil
	}
	o.SetRaw(field, want)
	return true, nil
}

func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// syncPlacement is _update_to_placement: ensure the provider, set inventory and traits when they
// differ. The disabled flag is read fresh from the service record, as nova's
// _sync_compute_service_disabled_trait does, so an operator's disable shows within one audit.
func (m *Manager) syncPlacement(ctx context.Context, actx map[string]any, cn *objects.ComputeNode, facts HostFacts) error {
	rp := cn.UUID()
	if _, err := m.placement.EnsureProvider(ctx, rp, cn.HypervisorHostname()); err != nil {
		return fmt.Errorf("ensure resource provider %s: %w", rp, err)
	}
	if _, err := m.placement.UpdateInventories(ctx, rp, func(current cloud.Inventories) cloud.Inventories {
		return InventoryPlan(facts, m.opts.Ratios, m.opts.Reserved, current)
	}); err != nil {
		return fmt.Errorf("update inventory of %s: %w", rp, err)
	}
	disabled, err := m.serviceDisabledFresh(ctx, actx)
	if err != nil {
		return err
	}
	return m.syncTraits(ctx, rp, disabled)
}

func (m *Manager) syncTraits(ctx context.Context, rp string, disabled bool) error {
	if _, err := m.placement.UpdateProviderTraits(ctx, rp, func(cur []string) []string {
		return TraitsPlan(cur, disabled)
	}); err != nil {
		return fmt.Errorf("update traits of %s: %w", rp, err)
	}
	return nil
}

func (m *Manager) serviceDisabledFresh(ctx context.Context, actx map[string]any) (bool, error) {
	svc, err := m.cond.ServiceGetByComputeHost(ctx, actx, m.opts.Host)
	if err != nil {
		return false, fmt.Errorf("read service of %s: %w", m.opts.Host, err)
	}
	return svc.Disabled(), nil
}

// SetHostEnabled is the set_host_enabled RPC: nova-api calls it when an operator enables or
// disables the service, and the compute flips COMPUTE_STATUS_DISABLED right away.
func (m *Manager) SetHostEnabled(ctx context.Context, enabled bool) (string, error) {
	m.mu.Lock()
	node := m.computeNode
	m.mu.Unlock()
	if node == nil {
		return "", errors.New("set host enabled: compute node not registered yet")
	}
	if err := m.syncTraits(ctx, node.UUID(), !enabled); err != nil {
		return "", err
	}
	if enabled {
		return "enabled", nil
	}
	return "disabled", nil
}
