package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Port is a neutron port with the binding extension's attributes.
type Port struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	NetworkID           string         `json:"network_id"`
	TenantID            string         `json:"tenant_id"`
	ProjectID           string         `json:"project_id"`
	MACAddress          string         `json:"mac_address"`
	AdminStateUp        bool           `json:"admin_state_up"`
	Status              string         `json:"status"`
	DeviceID            string         `json:"device_id"`
	DeviceOwner         string         `json:"device_owner"`
	FixedIPs            []FixedIP      `json:"fixed_ips"`
	SecurityGroups      []string       `json:"security_groups"`
	PortSecurityEnabled *bool          `json:"port_security_enabled,omitempty"`
	BindingHostID       string         `json:"binding:host_id"`
	BindingVIFType      string         `json:"binding:vif_type"`
	BindingVNICType     string         `json:"binding:vnic_type"`
	BindingVIFDetails   map[string]any `json:"binding:vif_details"`
	BindingProfile      map[string]any `json:"binding:profile"`
	DNSName             string         `json:"dns_name,omitempty"`
	MTU                 int            `json:"mtu,omitempty"`
	RevisionNumber      int            `json:"revision_number"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// Network is a neutron network with the provider extension's attributes.
type Network struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	TenantID            string   `json:"tenant_id"`
	ProjectID           string   `json:"project_id"`
	AdminStateUp        bool     `json:"admin_state_up"`
	Status              string   `json:"status"`
	Shared              bool     `json:"shared"`
	Subnets             []string `json:"subnets"`
	MTU                 int      `json:"mtu"`
	PortSecurityEnabled *bool    `json:"port_security_enabled,omitempty"`
	RouterExternal      bool     `json:"router:external"`
	NetworkType         string   `json:"provider:network_type,omitempty"`
	PhysicalNetwork     string   `json:"provider:physical_network,omitempty"`
	SegmentationID      *int     `json:"provider:segmentation_id,omitempty"`
	DNSDomain           string   `json:"dns_domain,omitempty"`
	Segments            []struct {
		NetworkType     string `json:"provider:network_type"`
		PhysicalNetwork string `json:"provider:physical_network"`
		SegmentationID  *int   `json:"provider:segmentation_id"`
	} `json:"segments,omitempty"`
}

// Subnet is a neutron subnet.
type Subnet struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	NetworkID       string   `json:"network_id"`
	CIDR            string   `json:"cidr"`
	IPVersion       int      `json:"ip_version"`
	GatewayIP       string   `json:"gateway_ip"`
	EnableDHCP      bool     `json:"enable_dhcp"`
	DNSNameservers  []string `json:"dns_nameservers"`
	AllocationPools []struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"allocation_pools"`
	HostRoutes []struct {
		Destination string `json:"destination"`
		NextHop     string `json:"nexthop"`
	} `json:"host_routes"`
	IPv6AddressMode *string `json:"ipv6_address_mode"`
	IPv6RAMode      *string `json:"ipv6_ra_mode"`
}

// Extension is one entry of GET /v2.0/extensions.
type Extension struct {
	Alias string `json:"alias"`
	Name  string `json:"name"`
}

// PortCreate is the body nova's _create_port_minimal sends.
type PortCreate struct {
	NetworkID      string    `json:"network_id"`
	DeviceID       string    `json:"device_id,omitempty"`
	AdminStateUp   bool      `json:"admin_state_up"`
	TenantID       string    `json:"tenant_id,omitempty"`
	SecurityGroups []string  `json:"security_groups,omitempty"`
	FixedIPs       []FixedIP `json:"fixed_ips,omitempty"`
}

// PortUpdate lists the attributes a compute changes; nil fields are not
// sent. Binding attributes are admin-only, so UpdatePort always uses the
// [neutron] service credentials.
type PortUpdate struct {
	DeviceID    *string
	DeviceOwner *string
	// BindingHostID binds the port to a host; with UnbindHost the update
	// sends "binding:host_id": null instead.
	BindingHostID  *string
	UnbindHost     bool
	BindingProfile map[string]any
	DNSName        *string
}

// MarshalJSON renders {"port": {...}} with explicit nulls where asked.
func (u PortUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if u.DeviceID != nil {
		m["device_id"] = *u.DeviceID
	}
	if u.DeviceOwner != nil {
		m["device_owner"] = *u.DeviceOwner
	}
	if u.UnbindHost {
		m["binding:host_id"] = nil
	} else if u.BindingHostID != nil {
		m["binding:host_id"] = *u.BindingHostID
	}
	if u.BindingProfile != nil {
		m["binding:profile"] = u.BindingProfile
	}
	if u.DNSName != nil {
		m["dns_name"] = *u.DNSName
	}
	return json.Marshal(map[string]any{"port": m})
}

// Ports is the part of the port API a compute uses. Neutron implements it; so does
// cloudtest's fake, and cloudtest.RunPortSuite holds both to the same behaviour.
type Ports interface {
	ListPorts(ctx context.Context, f PortFilter) ([]Port, error)
	GetPort(ctx context.Context, id string) (*Port, error)
	CreatePort(ctx context.Context, p PortCreate) (*Port, error)
	UpdatePort(ctx context.Context, id string, u PortUpdate) (*Port, error)
	DeletePort(ctx context.Context, id string) error
}

var _ Ports = (*Neutron)(nil)

// Neutron is a client of the networking API.
type Neutron struct {
	svc *service
}

// NewNeutron returns a neutron client. sess carries the [neutron] service
// credentials (the "admin client"); svcUser, if not nil, is the
// [service_user] session whose token accompanies user-token calls;
// httpRetries is [neutron] http_retries.
func NewNeutron(sess, svcUser *Session, endpointOverride string, httpRetries int) (*Neutron, error) {
	svc, err := newService(sess, svcUser, endpointOverride, "v2.0/", httpRetries)
	if err != nil {
		return nil, fmt.Errorf("neutron client: %w", err)
	}
	return &Neutron{svc: svc}, nil
}

// Endpoint returns the base URL in use (ending in v2.0/).
func (n *Neutron) Endpoint() string { return n.svc.base }

// PortFilter selects ports; empty fields are not filtered on. Fields limits
// the attributes returned.
type PortFilter struct {
	DeviceID    string
	TenantID    string
	NetworkID   string
	DeviceOwner string
	HostID      string
	IDs         []string
	Fields      []string
}

func (f PortFilter) query() string {
	q := url.Values{}
	// tenant_id first, as nova's get_instance_nw_info orders it.
	if f.TenantID != "" {
		q.Add("tenant_id", f.TenantID)
	}
	if f.DeviceID != "" {
		q.Add("device_id", f.DeviceID)
	}
	if f.NetworkID != "" {
		q.Add("network_id", f.NetworkID)
	}
	if f.DeviceOwner != "" {
		q.Add("device_owner", f.DeviceOwner)
	}
	if f.HostID != "" {
		q.Add("binding:host_id", f.HostID)
	}
	for _, id := range f.IDs {
		q.Add("id", id)
	}
	for _, fl := range f.Fields {
		q.Add("fields", fl)
	}
	return q.Encode()
}

// ListPorts lists ports matching f (user client).
func (n *Neutron) ListPorts(ctx context.Context, f PortFilter) ([]Port, error) {
	var out struct {
		Ports []Port `json:"ports"`
	}
	path := "ports"
	if q := f.query(); q != "" {
		path += "?" + q
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: path, out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	return out.Ports, nil
}

// GetPort shows one port (user client).
func (n *Neutron) GetPort(ctx context.Context, id string) (*Port, error) {
	var out struct {
		Port Port `json:"port"`
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: "ports/" + url.PathEscape(id), out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("get port %s: %w", id, err)
	}
	return &out.Port, nil
}

// CreatePort creates a port for an instance (user client, as nova's
// _create_port_minimal).
func (n *Neutron) CreatePort(ctx context.Context, p PortCreate) (*Port, error) {
	var out struct {
		Port Port `json:"port"`
	}
	_, err := n.svc.do(ctx, call{method: http.MethodPost, path: "ports",
		body: map[string]any{"port": p}, out: &out, ok: []int{http.StatusCreated}, asUser: true})
	if err != nil {
		return nil, fmt.Errorf("create port on network %s: %w", p.NetworkID, err)
	}
	return &out.Port, nil
}

// UpdatePort changes a port with the admin client. A binding update that
// neutron could not bind returns the port and ErrPortBindingFailed.
func (n *Neutron) UpdatePort(ctx context.Context, id string, u PortUpdate) (*Port, error) {
	var out struct {
		Port Port `json:"port"`
	}
	_, err := n.svc.do(ctx, call{method: http.MethodPut, path: "ports/" + url.PathEscape(id),
		body: u, out: &out, ok: []int{http.StatusOK}})
	if err != nil {
		return nil, fmt.Errorf("update port %s: %w", id, err)
	}
	if out.Port.BindingVIFType == "binding_failed" {
		return &out.Port, fmt.Errorf("update port %s on host %s: %w", id, out.Port.BindingHostID, ErrPortBindingFailed)
	}
	return &out.Port, nil
}

// DeletePort deletes a port (user client); a port already gone is not an error.
func (n *Neutron) DeletePort(ctx context.Context, id string) error {
	_, err := n.svc.do(ctx, call{method: http.MethodDelete, path: "ports/" + url.PathEscape(id),
		ok: []int{http.StatusNoContent}, asUser: true})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete port %s: %w", id, err)
	}
	return nil
}

// ListNetworks lists networks by id (GET /v2.0/networks?id=...; user client).
func (n *Neutron) ListNetworks(ctx context.Context, ids []string) ([]Network, error) {
	q := url.Values{}
	for _, id := range ids {
		q.Add("id", id)
	}
	var out struct {
		Networks []Network `json:"networks"`
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: "networks?" + q.Encode(), out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return out.Networks, nil
}

// GetNetwork shows one network, limited to fields if any are given (nova
// asks for "segments" and for the provider attributes this way).
func (n *Neutron) GetNetwork(ctx context.Context, id string, fields ...string) (*Network, error) {
	q := url.Values{}
	for _, f := range fields {
		q.Add("fields", f)
	}
	path := "networks/" + url.PathEscape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Network Network `json:"network"`
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: path, out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("get network %s: %w", id, err)
	}
	return &out.Network, nil
}

// ListSubnets lists subnets by id (user client).
func (n *Neutron) ListSubnets(ctx context.Context, ids []string) ([]Subnet, error) {
	q := url.Values{}
	for _, id := range ids {
		q.Add("id", id)
	}
	var out struct {
		Subnets []Subnet `json:"subnets"`
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: "subnets?" + q.Encode(), out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	return out.Subnets, nil
}

// Extensions lists the API extensions (nova checks for dns-integration,
// port-resource-request and friends).
func (n *Neutron) Extensions(ctx context.Context) ([]Extension, error) {
	var out struct {
		Extensions []Extension `json:"extensions"`
	}
	if _, err := n.svc.do(ctx, call{method: http.MethodGet, path: "extensions", out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	return out.Extensions, nil
}
