package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/driver/vif"
)

// Neutron is the part of the networking API the compute uses, with nova's split of credentials:
// port creation and reads with the user's token when the context carries one, binding updates
// with the [neutron] service credentials (cloud.Neutron does both).
type Neutron interface {
	cloud.Ports
	GetNetwork(ctx context.Context, id string, fields ...string) (*cloud.Network, error)
	ListSubnets(ctx context.Context, ids []string) ([]cloud.Subnet, error)
}

var _ Neutron = (*cloud.Neutron)(nil)

// VIF is one element of nova's network model (nova/network/model.py:VIF) as it is stored in
// InstanceInfoCache.network_info and shown by nova-api. Field names and shapes are nova's.
type VIF struct {
	ID               string         `json:"id"`
	Address          string         `json:"address"`
	Network          VIFNetwork     `json:"network"`
	Type             string         `json:"type"`
	Details          map[string]any `json:"details"`
	Devname          string         `json:"devname"`
	OVSInterfaceID   string         `json:"ovs_interfaceid"`
	QbhParams        any            `json:"qbh_params"`
	QbgParams        any            `json:"qbg_params"`
	Active           bool           `json:"active"`
	VNICType         string         `json:"vnic_type"`
	Profile          map[string]any `json:"profile"`
	PreserveOnDelete bool           `json:"preserve_on_delete"`
	DelegateCreate   bool           `json:"delegate_create"`
	Meta             map[string]any `json:"meta"`
}

// VIFNetwork is nova's model.Network.
type VIFNetwork struct {
	ID      string         `json:"id"`
	Bridge  string         `json:"bridge"`
	Label   string         `json:"label"`
	Subnets []VIFSubnet    `json:"subnets"`
	Meta    map[string]any `json:"meta"`
}

// VIFSubnet is nova's model.Subnet.
type VIFSubnet struct {
	CIDR    string         `json:"cidr"`
	DNS     []VIFIP        `json:"dns"`
	Gateway VIFIP          `json:"gateway"`
	IPs     []VIFFixedIP   `json:"ips"`
	Routes  []VIFRoute     `json:"routes"`
	Version int            `json:"version"`
	Meta    map[string]any `json:"meta"`
}

// VIFIP is nova's model.IP (gateway and DNS entries).
type VIFIP struct {
	Address *string        `json:"address"`
	Type    string         `json:"type"`
	Version *int           `json:"version"`
	Meta    map[string]any `json:"meta"`
}

// VIFFixedIP is nova's model.FixedIP.
type VIFFixedIP struct {
	Address     string         `json:"address"`
	Type        string         `json:"type"`
	Version     int            `json:"version"`
	Meta        map[string]any `json:"meta"`
	FloatingIPs []any          `json:"floating_ips"`
}

// VIFRoute is nova's model.Route.
type VIFRoute struct {
	CIDR      string         `json:"cidr"`
	Gateway   VIFIP          `json:"gateway"`
	Interface *string        `json:"interface"`
	Meta      map[string]any `json:"meta"`
}

func ipVersion(addr string) int {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		return 6
	}
	return 4
}

func ipRef(addr, typ string) VIFIP {
	if addr == "" {
		return VIFIP{Type: typ, Meta: map[string]any{}}
	}
	v := ipVersion(addr)
	return VIFIP{Address: &addr, Type: typ, Version: &v, Meta: map[string]any{}}
}

// BuildVIF renders one port as nova's _build_network_info_model does for an OVS binding.
func BuildVIF(p cloud.Port, n cloud.Network, subnets map[string]cloud.Subnet, bridge string, preserve bool) VIF {
	bySubnet := map[string][]string{}
	for _, ip := range p.FixedIPs {
		bySubnet[ip.SubnetID] = append(bySubnet[ip.SubnetID], ip.IPAddress)
	}
	ids := make([]string, 0, len(bySubnet))
	for id := range bySubnet {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var vsubs []VIFSubnet
	for _, id := range ids {
		s, ok := subnets[id]
		if !ok {
			continue
		}
		vs := VIFSubnet{CIDR: s.CIDR, Gateway: ipRef(s.GatewayIP, "gateway"), Version: s.IPVersion,
			Meta: map[string]any{}, DNS: []VIFIP{}, Routes: []VIFRoute{}}
		if s.EnableDHCP {
			vs.Meta["dhcp_server"] = nil
		}
		for _, d := range s.DNSNameservers {
			vs.DNS = append(vs.DNS, ipRef(d, "dns"))
		}
		for _, r := range s.HostRoutes {
			vs.Routes = append(vs.Routes, VIFRoute{CIDR: r.Destination, Gateway: ipRef(r.NextHop, "gateway"), Meta: map[string]any{}})
		}
		for _, a := range bySubnet[id] {
			vs.IPs = append(vs.IPs, VIFFixedIP{Address: a, Type: "fixed", Version: ipVersion(a), Meta: map[string]any{}, FloatingIPs: []any{}})
		}
		vsubs = append(vsubs, vs)
	}
	if vsubs == nil {
		vsubs = []VIFSubnet{}
	}
	mtu := n.MTU
	if mtu == 0 {
		mtu = 1500
	}
	details := p.BindingVIFDetails
	if details == nil {
		details = map[string]any{}
	}
	profile := p.BindingProfile
	if profile == nil {
		profile = map[string]any{}
	}
	vnic := p.BindingVNICType
	if vnic == "" {
		vnic = "normal"
	}
	if b, ok := details["bridge_name"].(string); ok && b != "" {
		bridge = b
	}
	vifType := p.BindingVIFType
	if vifType == "" {
		vifType = "unbound"
	}
	meta := map[string]any{"injected": false, "tenant_id": p.TenantID, "mtu": mtu, "tunneled": false}
	if n.PhysicalNetwork != "" {
		meta["physical_network"] = n.PhysicalNetwork
	}
	return VIF{
		ID: p.ID, Address: p.MACAddress, Type: vifType, Details: details,
		Network:        VIFNetwork{ID: n.ID, Bridge: bridge, Label: n.Name, Subnets: vsubs, Meta: meta},
		Devname:        vif.TapName(p.ID),
		OVSInterfaceID: p.ID, Active: p.Status == "ACTIVE", VNICType: vnic, Profile: profile,
		PreserveOnDelete: preserve, DelegateCreate: true, Meta: map[string]any{},
	}
}

// VIFPlan turns a VIF into the plumbing plan for container interface eth<index>.
func VIFPlan(v VIF, index int) (vif.Plan, error) {
	var subs []vif.Subnet
	for _, s := range v.Network.Subnets {
		cidr, err := netip.ParsePrefix(s.CIDR)
		if err != nil {
			return vif.Plan{}, fmt.Errorf("port %s: subnet cidr %q: %w", v.ID, s.CIDR, err)
		}
		var gw netip.Addr
		if s.Gateway.Address != nil {
			gw, _ = netip.ParseAddr(*s.Gateway.Address)
		}
		var routes []vif.Route
		for _, r := range s.Routes {
			dst, err := netip.ParsePrefix(r.CIDR)
			if err != nil || r.Gateway.Address == nil {
				continue
			}
			nh, err := netip.ParseAddr(*r.Gateway.Address)
			if err != nil {
				continue
			}
			routes = append(routes, vif.Route{Dst: dst, Gateway: nh})
		}
		var dns []netip.Addr
		for _, d := range s.DNS {
			if d.Address != nil {
				if a, err := netip.ParseAddr(*d.Address); err == nil {
					dns = append(dns, a)
				}
			}
		}
		for _, ip := range s.IPs {
			a, err := netip.ParseAddr(ip.Address)
			if err != nil {
				return vif.Plan{}, fmt.Errorf("port %s: address %q: %w", v.ID, ip.Address, err)
			}
			subs = append(subs, vif.Subnet{CIDR: cidr, IP: a, Gateway: gw, HostRoutes: routes, DNS: dns})
		}
	}
	mtu := 1500
	switch m := v.Network.Meta["mtu"].(type) {
	case float64:
		mtu = int(m)
	case int:
		mtu = m
	}
	return vif.NewPlan(v.ID, v.Address, mtu, index, subs)
}

// ParseNetworkInfo decodes an info cache's network_info (nil or "[]" give no VIFs).
func ParseNetworkInfo(raw json.RawMessage) ([]VIF, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var vifs []VIF
	if err := json.Unmarshal(raw, &vifs); err != nil {
		return nil, fmt.Errorf("decode network_info: %w", err)
	}
	return vifs, nil
}

// networkAPI does what nova/network/neutron.py does for one compute host.
type networkAPI struct {
	neutron Neutron
	host    string
	bridge  string
}

// allocate is allocate_for_instance: create ports on requested networks (or take requested
// ports), bind them to this host and return the network model. Ports created here are deleted
// on failure so a failed build leaves nothing behind.
func (n *networkAPI) allocate(ctx context.Context, inst *objects.Instance, reqs []*objects.NetworkRequest) ([]VIF, error) {
	if objects.NoAllocate(reqs) {
		return nil, nil
	}
	type item struct {
		port     cloud.Port
		preserve bool
	}
	var got []item
	fail := func(err error) ([]VIF, error) {
		for _, it := range got {
			if !it.preserve {
				if derr := n.neutron.DeletePort(ctx, it.port.ID); derr != nil && !errors.Is(derr, cloud.ErrNotFound) {
					err = errors.Join(err, fmt.Errorf("delete port %s after failed allocation: %w", it.port.ID, derr))
				}
			}
		}
		return nil, err
	}
	for _, r := range reqs {
		switch {
		case r.PortID() != "":
			p, err := n.neutron.GetPort(ctx, r.PortID())
			if err != nil {
				return fail(fmt.Errorf("requested port %s: %w", r.PortID(), err))
			}
			if p.DeviceID != "" && p.DeviceID != inst.UUID() {
				return fail(fmt.Errorf("port %s is in use by %s", p.ID, p.DeviceID))
			}
			got = append(got, item{port: *p, preserve: true})
		case r.NetworkID() != "":
			create := cloud.PortCreate{NetworkID: r.NetworkID(), DeviceID: inst.UUID(), AdminStateUp: true, TenantID: inst.ProjectID()}
			if a := r.Address(); a != "" {
				create.FixedIPs = []cloud.FixedIP{{IPAddress: a}}
			}
			p, err := n.neutron.CreatePort(ctx, create)
			if err != nil {
				return fail(fmt.Errorf("create port on network %s: %w", r.NetworkID(), err))
			}
			got = append(got, item{port: *p})
		default:
			return fail(errors.New("a network request names neither a network nor a port; nova-container-agent needs an explicit network or port"))
		}
	}
	az := inst.AvailabilityZone()
	if az == "" {
		az = "nova"
	}
	owner, id, host := "compute:"+az, inst.UUID(), n.host
	var vifs []VIF
	for _, it := range got {
		p, err := n.neutron.UpdatePort(ctx, it.port.ID, cloud.PortUpdate{DeviceID: &id, DeviceOwner: &owner, BindingHostID: &host})
		if err != nil {
			return fail(fmt.Errorf("bind port %s to %s: %w", it.port.ID, n.host, err))
		}
		if p.BindingVIFType == "binding_failed" {
			return fail(fmt.Errorf("binding port %s to host %s failed: is the L2 agent of this host alive in neutron?", p.ID, n.host))
		}
		v, err := n.describe(ctx, *p, it.preserve)
		if err != nil {
			return fail(err)
		}
		vifs = append(vifs, v)
	}
	return vifs, nil
}

func (n *networkAPI) describe(ctx context.Context, p cloud.Port, preserve bool) (VIF, error) {
	net, err := n.neutron.GetNetwork(ctx, p.NetworkID)
	if err != nil {
		return VIF{}, fmt.Errorf("read network %s of port %s: %w", p.NetworkID, p.ID, err)
	}
	var ids []string
	for _, ip := range p.FixedIPs {
		ids = append(ids, ip.SubnetID)
	}
	subs := map[string]cloud.Subnet{}
	if len(ids) > 0 {
		list, err := n.neutron.ListSubnets(ctx, ids)
		if err != nil {
			return VIF{}, fmt.Errorf("read subnets of port %s: %w", p.ID, err)
		}
		for _, s := range list {
			subs[s.ID] = s
		}
	}
	return BuildVIF(p, *net, subs, n.bridge, preserve), nil
}

// deallocate is deallocate_for_instance: ports the compute created are deleted, ports the user
// brought are unbound and kept.
func (n *networkAPI) deallocate(ctx context.Context, instanceUUID string, vifs []VIF) error {
	var errs []error
	for _, v := range vifs {
		if v.PreserveOnDelete {
			empty := ""
			if _, err := n.neutron.UpdatePort(ctx, v.ID, cloud.PortUpdate{DeviceID: &empty, DeviceOwner: &empty, UnbindHost: true}); err != nil && !errors.Is(err, cloud.ErrNotFound) {
				errs = append(errs, fmt.Errorf("unbind port %s: %w", v.ID, err))
			}
			continue
		}
		if err := n.neutron.DeletePort(ctx, v.ID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete port %s: %w", v.ID, err))
		}
	}
	// Ports that reached neutron but not our cache: a crash between create and cache save. A port
	// created here carries the instance as device_id from its creation and gets a device_owner
	// only when bound, so an unbound leftover is ours too (the build died between the two).
	ports, err := n.neutron.ListPorts(ctx, cloud.PortFilter{DeviceID: instanceUUID})
	if err != nil {
		errs = append(errs, fmt.Errorf("list leftover ports of %s: %w", instanceUUID, err))
	}
	known := map[string]bool{}
	for _, v := range vifs {
		known[v.ID] = true
	}
	for _, p := range ports {
		if known[p.ID] {
			continue
		}
		if err := n.neutron.DeletePort(ctx, p.ID); err != nil && !errors.Is(err, cloud.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete leftover port %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

// saveNetworkInfo stores the model in the instance's info cache (InstanceInfoCache.save), the
// copy nova-api shows as the server's addresses.
func (m *Manager) saveNetworkInfo(ctx context.Context, rctx map[string]any, uuid string, vifs []VIF) error {
	if vifs == nil {
		vifs = []VIF{}
	}
	raw, err := json.Marshal(vifs)
	if err != nil {
		return fmt.Errorf("encode network_info of %s: %w", uuid, err)
	}
	cache, err := objects.NewInstanceInfoCache(uuid, raw)
	if err != nil {
		return err
	}
	if err := m.cond.InfoCacheSave(ctx, rctx, cache); err != nil {
		return fmt.Errorf("save network info of %s: %w", uuid, err)
	}
	return nil
}

// instanceVIFs reads the network model from the instance's info cache.
func instanceVIFs(inst *objects.Instance) ([]VIF, error) {
	cache, err := inst.InfoCache()
	if err != nil || cache == nil {
		return nil, err
	}
	raw, err := cache.NetworkInfo()
	if err != nil {
		return nil, err
	}
	return ParseNetworkInfo(raw)
}
