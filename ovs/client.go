package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/nova-container-agent/nova-container-agent/ovs/ovsdb"
)

// External-id and other_config keys (os-vif's vif_plug_ovs and neutron's OVS agent).
const (
	// OwnerKey marks rows this agent created; its value is Config.Owner.
	OwnerKey = "nca-owner"

	KeyIfaceID     = "iface-id"
	KeyIfaceStatus = "iface-status"
	KeyAttachedMAC = "attached-mac"
	KeyVMUUID      = "vm-uuid"

	KeyNetUUID         = "net_uuid"
	KeyNetworkType     = "network_type"
	KeyPhysicalNetwork = "physical_network"
	KeySegmentationID  = "segmentation_id"
	KeyTag             = "tag"
)

// DeadVLAN is neutron's DEAD_VLAN_TAG: unbound ports get it so NORMAL never forwards them.
const DeadVLAN = 4095

// Binding is the Neutron network a port is bound to, as the agent records it in Port.other_config.
type Binding struct {
	NetworkID       string
	NetworkType     string // "vlan" or "flat"
	PhysicalNetwork string
	// SegmentationID is the provider VLAN; 0 for flat networks.
	SegmentationID int
}

// Validate checks the binding's fields.
func (b Binding) Validate() error {
	if b.NetworkID == "" {
		return fmt.Errorf("binding without network id: %w", ErrInvalid)
	}
	switch b.NetworkType {
	case "vlan":
		if b.SegmentationID < 1 || b.SegmentationID > 4094 {
			return fmt.Errorf("network %s: vlan segmentation id %d outside 1..4094: %w", b.NetworkID, b.SegmentationID, ErrInvalid)
		}
	case "flat":
		if b.SegmentationID != 0 {
			return fmt.Errorf("network %s: flat network with segmentation id %d: %w", b.NetworkID, b.SegmentationID, ErrInvalid)
		}
	default:
		return fmt.Errorf("network %s: network type %q not supported (vlan, flat): %w", b.NetworkID, b.NetworkType, ErrInvalid)
	}
	if b.PhysicalNetwork == "" {
		return fmt.Errorf("network %s without physical network: %w", b.NetworkID, ErrInvalid)
	}
	return nil
}

// PortSpec describes an instance port to put on the integration bridge.
type PortSpec struct {
	// Name is the OVS port and host device name, normally TapName(PortID).
	Name string
	// PortID is the Neutron port UUID (Interface external_ids:iface-id).
	PortID string
	// MAC is the Neutron port's mac_address (external_ids:attached-mac).
	MAC string
	// InstanceUUID is the nova instance (external_ids:vm-uuid).
	InstanceUUID string
	// Tag is the Port's access VLAN: DeadVLAN isolates it, 1..4094 is a local VLAN. 0 is
	// os-vif's plug (ovs-vsctl --may-exist add-port): a new port starts untagged for the L2
	// agent to tag, an existing one keeps its tag and binding — re-plugging after an agent
	// restart must not put a bound port on the untagged VLAN, where it would reach the other
	// untagged ports of every network until the L2 agent tags it again.
	Tag int
	// Binding, when set together with a local VLAN Tag, is recorded in Port.other_config.
	Binding *Binding
}

// Validate checks a PortSpec before any side effect.
func (s PortSpec) Validate() error {
	if err := validIfName(s.Name); err != nil {
		return fmt.Errorf("port %s: %w", s.PortID, err)
	}
	if s.PortID == "" {
		return fmt.Errorf("port %s: empty neutron port id: %w", s.Name, ErrInvalid)
	}
	if _, err := net.ParseMAC(s.MAC); err != nil || len(s.MAC) != 17 {
		return fmt.Errorf("port %s: mac %q: %w", s.PortID, s.MAC, ErrInvalid)
	}
	if s.Tag < 0 || s.Tag > DeadVLAN {
		return fmt.Errorf("port %s: tag %d outside 0..4095: %w", s.PortID, s.Tag, ErrInvalid)
	}
	if s.Binding != nil {
		if s.Tag < 1 || s.Tag > 4094 {
			return fmt.Errorf("port %s: binding needs a local vlan 1..4094, got %d: %w", s.PortID, s.Tag, ErrInvalid)
		}
		if err := s.Binding.Validate(); err != nil {
			return fmt.Errorf("port %s: %w", s.PortID, err)
		}
	}
	return nil
}

// PortRecord is an instance port as found in OVSDB.
type PortRecord struct {
	Name         string
	Bridge       string
	PortID       string
	MAC          string
	InstanceUUID string
	// Tag is the Port's access VLAN, 0 when unset.
	Tag int
	// Binding is decoded from Port.other_config; nil when absent or incomplete.
	Binding *Binding
	// OFPort is the OpenFlow port number, 0 until ovs-vswitchd assigned one, -1 on failure.
	OFPort int
}

// Client manages bridges and instance ports in OVSDB. It is safe for concurrent use.
type Client struct {
	db  client.Client
	cfg Config
}

// Dial connects to ovsdb-server at endpoint ("unix:/path" or "tcp:host:port"), starts a
// monitor of the tables we use and returns a Client configured by opts.
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	cfg, err := NewConfig(opts...)
	if err != nil {
		return nil, fmt.Errorf("ovs config: %w", err)
	}
	dbModel, err := ovsdb.Model()
	if err != nil {
		return nil, err
	}
	db, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint))
	if err != nil {
		return nil, fmt.Errorf("ovsdb client for %s: %w", endpoint, err)
	}
	if err := db.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect ovsdb %s: %w", endpoint, err)
	}
	if _, err := db.Monitor(ctx, monitorRequest(db)); err != nil {
		db.Disconnect()
		return nil, fmt.Errorf("monitor ovsdb %s: %w", endpoint, err)
	}
	return &Client{db: db, cfg: cfg}, nil
}

// monitorRequest monitors exactly the mapped columns: with MonitorAll ovsdb-server sends every
// column, and libovsdb drops a whole update that carries a column the model lacks (e.g.
// Bridge.datapath_id set by ovs-vswitchd), so the cache would never see ofport assigned.
func monitorRequest(db client.Client) *client.Monitor {
	var (
		o ovsdb.OpenvSwitch
		b ovsdb.Bridge
		p ovsdb.Port
		i ovsdb.Interface
	)
	return db.NewMonitor(
		client.WithTable(&o, &o.Bridges, &o.DatapathTypes, &o.IfaceTypes, &o.ExternalIDs, &o.OVSVersion, &o.NextCfg, &o.CurCfg),
		client.WithTable(&b, &b.Name, &b.Ports, &b.FailMode, &b.DatapathType, &b.Protocols, &b.ExternalIDs, &b.OtherConfig),
		client.WithTable(&p, &p.Name, &p.Interfaces, &p.Tag, &p.Trunks, &p.VLANMode, &p.ExternalIDs, &p.OtherConfig),
		client.WithTable(&i, &i.Name, &i.Type, &i.Options, &i.ExternalIDs, &i.OtherConfig, &i.OFPort, &i.MTURequest, &i.Error),
	)
}

// Close disconnects from ovsdb-server.
func (c *Client) Close() { c.db.Disconnect() }

// Config returns the validated configuration.
func (c *Client) Config() Config { return c.cfg }

// txn runs ops as one transaction and translates failures into our sentinels.
func (c *Client) txn(ctx context.Context, what string, ops []libovsdb.Operation) error {
	if len(ops) == 0 {
		return nil
	}
	res, err := c.db.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("%s: transact: %w", what, err)
	}
	opErrs, err := libovsdb.CheckOperationResults(res, ops)
	if err != nil {
		// ovsdb-server reports index clashes in the extra commit result, which libovsdb
		// returns as err rather than in opErrs.
		var cv *libovsdb.ConstraintViolation
		if errors.As(err, &cv) {
			return fmt.Errorf("%s: %w: %w", what, ErrConflict, err)
		}
		for _, oe := range opErrs {
			var cv *libovsdb.ConstraintViolation
			if errors.As(oe, &cv) {
				return fmt.Errorf("%s: %w: %w", what, ErrConflict, oe)
			}
		}
		if len(opErrs) > 0 {
			return fmt.Errorf("%s: %w", what, errors.Join(toErrs(opErrs)...))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func toErrs(in []libovsdb.OperationError) []error {
	out := make([]error, len(in))
	for i, e := range in {
		out[i] = e
	}
	return out
}

// waitCache waits until the monitor cache reflects our own committed transaction: libovsdb
// returns from Transact before the update notification is necessarily applied, and the next
// call reads the cache.
func (c *Client) waitCache(ctx context.Context, what string, done func() bool) error {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: wait for ovsdb update: %w", what, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s: ovsdb update not seen within 10s", what)
		case <-tick.C:
		}
	}
	return nil
}

func (c *Client) root(ctx context.Context) (*ovsdb.OpenvSwitch, error) {
	var rows []ovsdb.OpenvSwitch
	if err := c.db.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list Open_vSwitch: %w", err)
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("expected one Open_vSwitch row, found %d: %w", len(rows), ErrNotFound)
	}
	return &rows[0], nil
}

func (c *Client) bridge(ctx context.Context, name string) (*ovsdb.Bridge, error) {
	br := &ovsdb.Bridge{Name: name}
	if err := c.db.Get(ctx, br); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("bridge %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("get bridge %s: %w", name, err)
	}
	return br, nil
}

func (c *Client) port(ctx context.Context, name string) (*ovsdb.Port, error) {
	p := &ovsdb.Port{Name: name}
	if err := c.db.Get(ctx, p); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("port %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("get port %s: %w", name, err)
	}
	return p, nil
}

func (c *Client) iface(ctx context.Context, name string) (*ovsdb.Interface, error) {
	i := &ovsdb.Interface{Name: name}
	if err := c.db.Get(ctx, i); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("interface %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("get interface %s: %w", name, err)
	}
	return i, nil
}

// bridgeOfPort finds the bridge whose ports column references portUUID.
func (c *Client) bridgeOfPort(ctx context.Context, portUUID string) (*ovsdb.Bridge, error) {
	var brs []ovsdb.Bridge
	if err := c.db.WhereCache(func(b *ovsdb.Bridge) bool { return slices.Contains(b.Ports, portUUID) }).List(ctx, &brs); err != nil {
		return nil, fmt.Errorf("find bridge of port %s: %w", portUUID, err)
	}
	if len(brs) == 0 {
		return nil, fmt.Errorf("bridge of port %s: %w", portUUID, ErrNotFound)
	}
	return &brs[0], nil
}

// namer hands out named-uuids, which let one transaction reference rows it inserts.
type namer struct{ n int }

func (n *namer) next() string { n.n++; return "nca_row" + strconv.Itoa(n.n) }

var ofProtocols = []string{"OpenFlow10", "OpenFlow13", "OpenFlow14"}

// EnsureBridges makes the integration bridge and every mapped physical bridge exist with
// fail_mode=secure, the configured datapath_type and OpenFlow 1.0/1.3/1.4 enabled, and links
// each physical bridge to the integration bridge with neutron's int-/phy- patch pair. It is one
// transaction and idempotent.
//
// Patch ports are created with their real peer at once (neutron first points them at
// "nonexistent-peer"): with fail_mode=secure and no flows a bridge forwards nothing, and our
// flows arrive as one atomic bundle holding both NORMAL and the patch drop rules, so the loop
// window neutron guards against does not exist here.
func (c *Client) EnsureBridges(ctx context.Context) error {
	root, err := c.root(ctx)
	if err != nil {
		return fmt.Errorf("ensure bridges: %w", err)
	}
	var ops []libovsdb.Operation
	var nm namer
	secure := "secure"
	// Bridges created in this transaction: name -> named uuid, so patch ports can join them.
	newBr := map[string]*ovsdb.Bridge{}
	ensureBridge := func(name string) error {
		br, err := c.bridge(ctx, name)
		if errors.Is(err, ErrNotFound) {
			ifc := &ovsdb.Interface{UUID: nm.next(), Name: name, Type: "internal", ExternalIDs: c.owned(nil)}
			p := &ovsdb.Port{UUID: nm.next(), Name: name, Interfaces: []string{ifc.UUID}, ExternalIDs: c.owned(nil)}
			nb := &ovsdb.Bridge{UUID: nm.next(), Name: name, FailMode: &secure, DatapathType: c.cfg.DatapathType,
				Protocols: ofProtocols, Ports: []string{p.UUID}, ExternalIDs: c.owned(nil)}
			newBr[name] = nb
			o, err := c.createAll(ifc, p)
			if err != nil {
				return err
			}
			ops = append(ops, o...)
			return nil
		}
		if err != nil {
			return err
		}
		if br.FailMode == nil || *br.FailMode != secure || br.DatapathType != c.cfg.DatapathType {
			br.FailMode, br.DatapathType = &secure, c.cfg.DatapathType
			o, err := c.db.Where(br).Update(br, &br.FailMode, &br.DatapathType)
			if err != nil {
				return err
			}
			ops = append(ops, o...)
		}
		if missing := missingProtocols(br.Protocols); len(missing) > 0 {
			o, err := c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Protocols, Mutator: libovsdb.MutateOperationInsert, Value: missing})
			if err != nil {
				return err
			}
			ops = append(ops, o...)
		}
		return nil
	}
	ensurePatch := func(bridge, name, peer string) error {
		ifc, err := c.iface(ctx, name)
		if err == nil {
			if ifc.Type != "patch" || ifc.Options["peer"] != peer {
				ifc.Type = "patch"
				ifc.Options = map[string]string{"peer": peer}
				o, err := c.db.Where(ifc).Update(ifc, &ifc.Type, &ifc.Options)
				if err != nil {
					return err
				}
				ops = append(ops, o...)
			}
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		ni := &ovsdb.Interface{UUID: nm.next(), Name: name, Type: "patch", Options: map[string]string{"peer": peer}, ExternalIDs: c.owned(nil)}
		np := &ovsdb.Port{UUID: nm.next(), Name: name, Interfaces: []string{ni.UUID}, ExternalIDs: c.owned(nil)}
		o, err := c.createAll(ni, np)
		if err != nil {
			return err
		}
		ops = append(ops, o...)
		if nb, ok := newBr[bridge]; ok {
			nb.Ports = append(nb.Ports, np.UUID)
			return nil
		}
		br, err := c.bridge(ctx, bridge)
		if err != nil {
			return err
		}
		o, err = c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{np.UUID}})
		if err != nil {
			return err
		}
		ops = append(ops, o...)
		return nil
	}
	if err := ensureBridge(c.cfg.IntegrationBridge); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", c.cfg.IntegrationBridge, err)
	}
	for _, pb := range c.cfg.PhysicalBridges() {
		if err := ensureBridge(pb.Bridge); err != nil {
			return fmt.Errorf("ensure bridge %s: %w", pb.Bridge, err)
		}
		if err := ensurePatch(c.cfg.IntegrationBridge, pb.IntPatch, pb.PhysPatch); err != nil {
			return fmt.Errorf("ensure patch port %s on %s: %w", pb.IntPatch, c.cfg.IntegrationBridge, err)
		}
		if err := ensurePatch(pb.Bridge, pb.PhysPatch, pb.IntPatch); err != nil {
			return fmt.Errorf("ensure patch port %s on %s: %w", pb.PhysPatch, pb.Bridge, err)
		}
	}
	var newUUIDs []string
	for _, name := range slices.Sorted(maps.Keys(newBr)) {
		nb := newBr[name]
		o, err := c.db.Create(nb)
		if err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		ops = append(ops, o...)
		newUUIDs = append(newUUIDs, nb.UUID)
	}
	if len(newUUIDs) > 0 {
		o, err := c.db.Where(root).Mutate(root, model.Mutation{Field: &root.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: newUUIDs})
		if err != nil {
			return fmt.Errorf("attach new bridges: %w", err)
		}
		ops = append(ops, o...)
	}
	if err := c.txn(ctx, "ensure bridges", ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "ensure bridges", func() bool {
		for _, pb := range c.cfg.PhysicalBridges() {
			if _, err := c.port(ctx, pb.PhysPatch); err != nil {
				return false
			}
		}
		br, err := c.bridge(ctx, c.cfg.IntegrationBridge)
		return err == nil && br.FailMode != nil && *br.FailMode == secure
	})
}

// createAll builds insert operations for rows of different tables (libovsdb's Create wants
// one table per call).
func (c *Client) createAll(rows ...model.Model) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	for _, r := range rows {
		o, err := c.db.Create(r)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

func missingProtocols(have []string) []string {
	var out []string
	for _, p := range ofProtocols {
		if !slices.Contains(have, p) {
			out = append(out, p)
		}
	}
	return out
}

// owned returns ids plus our owner key.
func (c *Client) owned(ids map[string]string) map[string]string {
	out := maps.Clone(ids)
	if out == nil {
		out = map[string]string{}
	}
	out[OwnerKey] = c.cfg.Owner
	return out
}

func ifaceIDs(s PortSpec) map[string]string {
	return map[string]string{
		KeyIfaceID:     s.PortID,
		KeyIfaceStatus: "active",
		KeyAttachedMAC: s.MAC,
		KeyVMUUID:      s.InstanceUUID,
	}
}

// bindingConfig renders b as neutron's agent writes Port.other_config (all strings).
func bindingConfig(b *Binding, tag int) map[string]string {
	if b == nil {
		return map[string]string{}
	}
	oc := map[string]string{
		KeyNetUUID:         b.NetworkID,
		KeyNetworkType:     b.NetworkType,
		KeyPhysicalNetwork: b.PhysicalNetwork,
		KeyTag:             strconv.Itoa(tag),
	}
	if b.SegmentationID != 0 {
		oc[KeySegmentationID] = strconv.Itoa(b.SegmentationID)
	}
	return oc
}

func tagPtr(tag int) *int {
	if tag == 0 {
		return nil
	}
	return &tag
}

// AddPort adds (or, when it already exists on the integration bridge, updates in place) the
// instance port described by spec, in one transaction: Interface with os-vif's external_ids,
// Port with tag and neutron's other_config, and the Bridge's ports column. A port of that name
// on another bridge, or owned by another agent, is ErrConflict.
func (c *Client) AddPort(ctx context.Context, spec PortSpec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("add port: %w", err)
	}
	what := fmt.Sprintf("add port %s (%s) to %s", spec.Name, spec.PortID, c.cfg.IntegrationBridge)
	br, err := c.bridge(ctx, c.cfg.IntegrationBridge)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var ops []libovsdb.Operation
	existing, err := c.port(ctx, spec.Name)
	switch {
	case err == nil:
		if !slices.Contains(br.Ports, existing.UUID) {
			return fmt.Errorf("%s: port exists on another bridge: %w", what, ErrConflict)
		}
		if owner := existing.ExternalIDs[OwnerKey]; owner != c.cfg.Owner {
			return fmt.Errorf("%s: port owned by %q: %w", what, owner, ErrConflict)
		}
		ifc, err := c.iface(ctx, spec.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ifc.ExternalIDs = c.owned(ifaceIDs(spec))
		o, err := c.db.Where(ifc).Update(ifc, &ifc.ExternalIDs)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
		if spec.Tag != 0 {
			existing.Tag = tagPtr(spec.Tag)
			existing.OtherConfig = bindingConfig(spec.Binding, spec.Tag)
			fields := []any{&existing.Tag, &existing.OtherConfig}
			if spec.Tag != DeadVLAN && (existing.VLANMode != nil || len(existing.Trunks) > 0) {
				// neutron's _bind_devices clears these when a port leaves the dead VLAN.
				existing.VLANMode, existing.Trunks = nil, nil
				fields = append(fields, &existing.VLANMode, &existing.Trunks)
			}
			o, err = c.db.Where(existing).Update(existing, fields...)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			ops = append(ops, o...)
		}
	case errors.Is(err, ErrNotFound):
		var nm namer
		ifc := &ovsdb.Interface{UUID: nm.next(), Name: spec.Name, ExternalIDs: c.owned(ifaceIDs(spec))}
		p := &ovsdb.Port{UUID: nm.next(), Name: spec.Name, Interfaces: []string{ifc.UUID}, Tag: tagPtr(spec.Tag),
			OtherConfig: bindingConfig(spec.Binding, spec.Tag), ExternalIDs: c.owned(nil)}
		o, err := c.createAll(ifc, p)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
		o, err = c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{p.UUID}})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := c.txn(ctx, what, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, what, func() bool {
		p, err := c.port(ctx, spec.Name)
		if err != nil || (spec.Tag != 0 && !equalTag(p.Tag, spec.Tag)) {
			return false
		}
		i, err := c.iface(ctx, spec.Name)
		return err == nil && i.ExternalIDs[KeyIfaceID] == spec.PortID && i.ExternalIDs[KeyAttachedMAC] == spec.MAC
	})
}

func equalTag(have *int, want int) bool {
	if have == nil {
		return want == 0
	}
	return *have == want
}

// SetPortVLAN changes an existing port's tag and binding (neutron's port_bound / port_dead).
func (c *Client) SetPortVLAN(ctx context.Context, name string, tag int, b *Binding) error {
	what := fmt.Sprintf("set vlan %d on port %s", tag, name)
	p, err := c.port(ctx, name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	i, err := c.iface(ctx, name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	spec := PortSpec{Name: name, PortID: i.ExternalIDs[KeyIfaceID], MAC: i.ExternalIDs[KeyAttachedMAC],
		InstanceUUID: i.ExternalIDs[KeyVMUUID], Tag: tag, Binding: b}
	if p.ExternalIDs[OwnerKey] != c.cfg.Owner {
		return fmt.Errorf("%s: port owned by %q: %w", what, p.ExternalIDs[OwnerKey], ErrConflict)
	}
	return c.AddPort(ctx, spec)
}

// DeletePort removes the named port from the integration bridge with its Port and Interface
// rows, in one transaction. A missing port is not an error (like ovs-vsctl --if-exists); a port
// owned by another agent is ErrConflict.
func (c *Client) DeletePort(ctx context.Context, name string) error {
	what := fmt.Sprintf("delete port %s from %s", name, c.cfg.IntegrationBridge)
	p, err := c.port(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if owner := p.ExternalIDs[OwnerKey]; owner != c.cfg.Owner {
		return fmt.Errorf("%s: port owned by %q: %w", what, owner, ErrConflict)
	}
	ops, err := c.deletePortOps(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// ovs-vswitchd must have closed the device before the port can be added again: if the
	// removal and a re-add of the same name reach it in one reconfiguration it sees no
	// change and keeps polling the old, dead device (the guest behind a recreated veth
	// then receives nothing it sends). So the removal waits for ovs-vswitchd, as
	// ovs-vsctl does, through next_cfg/cur_cfg; without a running ovs-vswitchd (cur_cfg
	// never set: the in-memory test server) there is nobody to wait for.
	root, err := c.root(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	vswitchd := root.CurCfg > 0
	if vswitchd {
		o, err := c.db.Where(root).Mutate(root, model.Mutation{Field: &root.NextCfg, Mutator: libovsdb.MutateOperationAdd, Value: 1})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
	}
	if err := c.txn(ctx, what, ops); err != nil {
		return err
	}
	if err := c.waitCache(ctx, what, func() bool {
		_, err := c.port(ctx, name)
		return errors.Is(err, ErrNotFound)
	}); err != nil {
		return err
	}
	if !vswitchd {
		return nil
	}
	// One update carries a whole transaction: with the port gone from the cache, next_cfg
	// there includes our bump (and any other client's since), so reaching it is enough.
	root, err = c.root(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	want := root.NextCfg
	return c.waitCache(ctx, what+": ovs-vswitchd applies it", func() bool {
		r, err := c.root(ctx)
		return err == nil && r.CurCfg >= want
	})
}

// deletePortOps detaches p from its bridge and deletes it and its interfaces explicitly: real
// ovsdb-server would garbage-collect them, the in-memory test server does not.
func (c *Client) deletePortOps(ctx context.Context, p *ovsdb.Port) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	br, err := c.bridgeOfPort(ctx, p.UUID)
	if err == nil {
		o, err := c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: libovsdb.MutateOperationDelete, Value: []string{p.UUID}})
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	o, err := c.db.Where(p).Delete()
	if err != nil {
		return nil, err
	}
	ops = append(ops, o...)
	for _, iu := range p.Interfaces {
		o, err := c.db.Where(&ovsdb.Interface{UUID: iu}).Delete()
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// DeleteBridge removes a bridge we own together with all its ports, in one transaction. It
// exists for tests and teardown; a missing bridge is not an error.
func (c *Client) DeleteBridge(ctx context.Context, name string) error {
	what := fmt.Sprintf("delete bridge %s", name)
	br, err := c.bridge(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if owner := br.ExternalIDs[OwnerKey]; owner != c.cfg.Owner {
		return fmt.Errorf("%s: bridge owned by %q: %w", what, owner, ErrConflict)
	}
	root, err := c.root(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ops, err := c.db.Where(root).Mutate(root, model.Mutation{Field: &root.Bridges, Mutator: libovsdb.MutateOperationDelete, Value: []string{br.UUID}})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	o, err := c.db.Where(br).Delete()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ops = append(ops, o...)
	for _, pu := range br.Ports {
		p := &ovsdb.Port{UUID: pu}
		if err := c.db.Get(ctx, p); err != nil {
			return fmt.Errorf("%s: port %s: %w", what, pu, err)
		}
		o, err := c.db.Where(p).Delete()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
		for _, iu := range p.Interfaces {
			o, err := c.db.Where(&ovsdb.Interface{UUID: iu}).Delete()
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			ops = append(ops, o...)
		}
	}
	if err := c.txn(ctx, what, ops); err != nil {
		return err
	}
	return c.waitCache(ctx, what, func() bool {
		_, err := c.bridge(ctx, name)
		return errors.Is(err, ErrNotFound)
	})
}

// ListPorts returns the instance ports this agent owns on the integration bridge, sorted by
// name: Ports whose Interface carries our owner key and an iface-id.
func (c *Client) ListPorts(ctx context.Context) ([]PortRecord, error) {
	br, err := c.bridge(ctx, c.cfg.IntegrationBridge)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	var out []PortRecord
	for _, pu := range br.Ports {
		p := &ovsdb.Port{UUID: pu}
		if err := c.db.Get(ctx, p); err != nil {
			if errors.Is(err, client.ErrNotFound) {
				continue // a port removed between the two cache reads
			}
			return nil, fmt.Errorf("list ports: port %s: %w", pu, err)
		}
		if len(p.Interfaces) == 0 {
			continue
		}
		i := &ovsdb.Interface{UUID: p.Interfaces[0]}
		if err := c.db.Get(ctx, i); err != nil {
			continue
		}
		if i.ExternalIDs[OwnerKey] != c.cfg.Owner || i.ExternalIDs[KeyIfaceID] == "" {
			continue
		}
		out = append(out, toRecord(c.cfg.IntegrationBridge, p, i))
	}
	slices.SortFunc(out, func(a, b PortRecord) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func toRecord(bridge string, p *ovsdb.Port, i *ovsdb.Interface) PortRecord {
	r := PortRecord{Name: p.Name, Bridge: bridge, PortID: i.ExternalIDs[KeyIfaceID],
		MAC: i.ExternalIDs[KeyAttachedMAC], InstanceUUID: i.ExternalIDs[KeyVMUUID]}
	if p.Tag != nil {
		r.Tag = *p.Tag
	}
	if i.OFPort != nil {
		r.OFPort = *i.OFPort
	}
	r.Binding = parseBinding(p.OtherConfig)
	return r
}

// parseBinding decodes Port.other_config; malformed values (another tool's data) yield nil
// rather than an error so one bad row cannot stop recovery of the others.
func parseBinding(oc map[string]string) *Binding {
	b := Binding{NetworkID: oc[KeyNetUUID], NetworkType: oc[KeyNetworkType], PhysicalNetwork: oc[KeyPhysicalNetwork]}
	if s := oc[KeySegmentationID]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil
		}
		b.SegmentationID = n
	}
	if b.Validate() != nil {
		return nil
	}
	return &b
}

// OFPort waits until ovs-vswitchd has given the named interface an OpenFlow port number and
// returns it. It fails at once if vswitchd reported an error for the interface.
func (c *Client) OFPort(ctx context.Context, name string) (int, error) {
	var port int
	var failure error
	err := c.waitCache(ctx, "ofport of "+name, func() bool {
		i, err := c.iface(ctx, name)
		if err != nil || i.OFPort == nil || *i.OFPort == 0 {
			return false
		}
		if *i.OFPort < 0 {
			msg := "unknown error"
			if i.Error != nil {
				msg = *i.Error
			}
			failure = fmt.Errorf("interface %s has no ofport: %s", name, msg)
			return true
		}
		port = *i.OFPort
		return true
	})
	if err != nil {
		return 0, err
	}
	return port, failure
}

// LookupBridge returns a copy of the named Bridge row.
func (c *Client) LookupBridge(ctx context.Context, name string) (ovsdb.Bridge, error) {
	br, err := c.bridge(ctx, name)
	if err != nil {
		return ovsdb.Bridge{}, err
	}
	return *br, nil
}

// LookupPort returns a copy of the named Port row.
func (c *Client) LookupPort(ctx context.Context, name string) (ovsdb.Port, error) {
	p, err := c.port(ctx, name)
	if err != nil {
		return ovsdb.Port{}, err
	}
	return *p, nil
}

// LookupInterface returns a copy of the named Interface row.
func (c *Client) LookupInterface(ctx context.Context, name string) (ovsdb.Interface, error) {
	i, err := c.iface(ctx, name)
	if err != nil {
		return ovsdb.Interface{}, err
	}
	return *i, nil
}

// BridgePortNames returns the names of the ports on the named bridge, sorted.
func (c *Client) BridgePortNames(ctx context.Context, bridge string) ([]string, error) {
	br, err := c.bridge(ctx, bridge)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, pu := range br.Ports {
		p := &ovsdb.Port{UUID: pu}
		if err := c.db.Get(ctx, p); err != nil {
			return nil, fmt.Errorf("bridge %s port %s: %w", bridge, pu, err)
		}
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names, nil
}
