// Package neutrontest is the test kit of package neutron: Server, a stateful fake of the part of
// neutron-server (ML2 RpcCallbacks and AgentExtRpcCallback) an L2 agent talks to over
// oslo.messaging, and its notifier fanouts.
//
//	b := rpctest.NewBroker()
//	srvConn, _ := rpc.Dial(ctx, "rabbit://fake/", rpc.WithDialer(b.Dial))
//	fake := neutrontest.NewServer()
//	go fake.Serve(ctx, srvConn, "neutron")
//	fake.AddPort(neutrontest.Port{ID: id, Host: "cmp1", ...})
//	... the agent reports the port up ...
//	fake.Port(id).Status == "ACTIVE"
package neutrontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// Port statuses (neutron_lib constants).
const (
	StatusDown   = "DOWN"
	StatusBuild  = "BUILD"
	StatusActive = "ACTIVE"
)

// Port is a neutron port as the fake server knows it: its binding and its bound segment.
type Port struct {
	ID           string
	NetworkID    string
	MAC          string
	DeviceOwner  string
	AdminStateUp bool
	// Host is binding:host_id; "" means unbound.
	Host string
	// BindingFailed makes the port unbound even with a host (vif_type binding_failed).
	BindingFailed   bool
	Status          string
	NetworkType     string
	PhysicalNetwork string
	// SegmentationID is nil for flat networks.
	SegmentationID *int
	MTU            int
	FixedIPs       []map[string]string
}

// Call is one request the fake received.
type Call struct {
	Topic   string
	Method  string
	Version string
	Args    map[string]json.RawMessage
	Context rpc.Context
	At      time.Time
}

// Server is the fake neutron-server. It is safe for concurrent use.
type Server struct {
	mu     sync.Mutex
	ports  map[string]*Port
	agents map[string]map[string]any // host -> last agent_state
	revive map[string]bool           // host -> answer "revived" next
	fail   map[string]int            // method -> remaining failures to inject
	calls  []Call
	hook   func(Call)
}

// NewServer returns a server with no ports and no agents.
func NewServer() *Server {
	return &Server{ports: map[string]*Port{}, agents: map[string]map[string]any{},
		revive: map[string]bool{}, fail: map[string]int{}}
}

// Topics the fake consumes (with Serve).
const (
	TopicPlugin  = "q-plugin"
	TopicReports = "q-reports-plugin"
)

// Serve consumes q-plugin and q-reports-plugin on the exchange until ctx is done.
func (s *Server) Serve(ctx context.Context, conn *rpc.Conn, exchange string) error {
	errc := make(chan error, 2)
	plugin := rpc.NewDispatcher(rpc.Endpoint{Version: "1.9", Methods: map[string]rpc.HandlerFunc{
		"get_devices_details_list_and_failed_devices": s.record(TopicPlugin, s.devicesDetails),
		"update_device_list":                          s.record(TopicPlugin, s.updateDeviceList),
	}})
	reports := rpc.NewDispatcher(rpc.Endpoint{Version: "1.2", Methods: map[string]rpc.HandlerFunc{
		"has_alive_neutron_server": s.record(TopicReports, func(context.Context, *rpc.Request) (any, error) { return true, nil }),
		"report_state":             s.record(TopicReports, s.reportState),
	}})
	go func() { errc <- conn.Serve(ctx, rpc.Target{Exchange: exchange, Topic: TopicPlugin}, plugin) }()
	go func() { errc <- conn.Serve(ctx, rpc.Target{Exchange: exchange, Topic: TopicReports}, reports) }()
	return errors.Join(<-errc, <-errc)
}

// errInjected is the failure the fake returns when told to fail.
var errInjected = errors.New("injected failure")

// FailNext makes the next n calls of method fail (an oslo failure reply).
func (s *Server) FailNext(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = n
}

// OnCall registers f to run on every request, before it is answered and outside the server's
// lock (to observe what the agent did before a call, e.g. the port tag at update_device_list).
func (s *Server) OnCall(f func(Call)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

func (s *Server) record(topic string, h rpc.HandlerFunc) rpc.HandlerFunc {
	return func(ctx context.Context, req *rpc.Request) (any, error) {
		c := Call{Topic: topic, Method: req.Method, Version: req.Version, Args: req.Args, Context: req.Context, At: time.Now()}
		s.mu.Lock()
		hook := s.hook
		s.mu.Unlock()
		if hook != nil {
			hook(c)
		}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		if s.fail[req.Method] > 0 {
			s.fail[req.Method]--
			s.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", req.Method, errInjected)
		}
		s.mu.Unlock()
		return h(ctx, req)
	}
}

// Calls returns the requests received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Methods returns the method names received so far, in order, optionally only those of topic.
func (s *Server) Methods(topic string) []string {
	var out []string
	for _, c := range s.Calls() {
		if topic == "" || c.Topic == topic {
			out = append(out, c.Method)
		}
	}
	return out
}

// AddPort creates or replaces a port.
func (s *Server) AddPort(p Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Status == "" {
		p.Status = StatusDown
	}
	cp := p
	s.ports[p.ID] = &cp
}

// UpdatePort changes a port in place; false if it does not exist.
func (s *Server) UpdatePort(id string, f func(*Port)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[id]
	if ok {
		f(p)
	}
	return ok
}

// DeletePort removes a port.
func (s *Server) DeletePort(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ports, id)
}

// Port returns a copy of the port, false if it does not exist.
func (s *Server) Port(id string) (Port, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[id]
	if !ok {
		return Port{}, false
	}
	return *p, true
}

// AgentState returns the last agent_state reported for host.
func (s *Server) AgentState(host string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.agents[host]
	return st, ok
}

// Revive makes the next report_state of host answer "revived" (the server had it dead).
func (s *Server) Revive(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revive[host] = true
}

func decodeArg(req *rpc.Request, name string, v any) error {
	raw, ok := req.Args[name]
	if !ok {
		return fmt.Errorf("%s: missing argument %q", req.Method, name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: argument %q: %w", req.Method, name, err)
	}
	return nil
}

// reportState is AgentExtRpcCallback.report_state: "new" for an unknown agent, then "alive".
func (s *Server) reportState(_ context.Context, req *rpc.Request) (any, error) {
	var wrap struct {
		AgentState map[string]any `json:"agent_state"`
	}
	if err := decodeArg(req, "agent_state", &wrap); err != nil {
		return nil, err
	}
	var ts string
	if err := decodeArg(req, "time", &ts); err != nil {
		return nil, err
	}
	if _, err := rpc.ParseTimestamp(ts); err != nil {
		return nil, fmt.Errorf("report_state: %w", err)
	}
	host, _ := wrap.AgentState["host"].(string)
	if host == "" {
		return nil, fmt.Errorf("report_state: agent_state without host")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, known := s.agents[host]
	s.agents[host] = wrap.AgentState
	switch {
	case !known:
		return "new", nil
	case s.revive[host]:
		delete(s.revive, host)
		return "revived", nil
	}
	return "alive", nil
}

// devicesDetails is RpcCallbacks.get_devices_details_list_and_failed_devices with
// _get_device_details and _get_new_status.
func (s *Server) devicesDetails(_ context.Context, req *rpc.Request) (any, error) {
	var devices []string
	var host string
	if err := decodeArg(req, "devices", &devices); err != nil {
		return nil, err
	}
	if err := decodeArg(req, "host", &host); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, dev := range devices {
		p, ok := s.ports[dev]
		if !ok || p.Host == "" || p.BindingFailed {
			out = append(out, map[string]any{"device": dev})
			continue
		}
		if p.Host != host {
			out = append(out, map[string]any{"device": dev, "no_active_binding": true})
			continue
		}
		var seg any
		if p.SegmentationID != nil {
			seg = *p.SegmentationID
		}
		fixed := []any{}
		for _, f := range p.FixedIPs {
			fixed = append(fixed, f)
		}
		out = append(out, map[string]any{
			"device": dev, "network_id": p.NetworkID, "port_id": p.ID, "mac_address": p.MAC,
			"admin_state_up": p.AdminStateUp, "network_type": p.NetworkType, "segmentation_id": seg,
			"physical_network": p.PhysicalNetwork, "mtu": p.MTU, "fixed_ips": fixed,
			"device_owner": p.DeviceOwner, "allowed_address_pairs": []any{}, "port_security_enabled": true,
			"qos_policy_id": nil, "qos_network_policy_id": nil, "profile": map[string]any{},
			"propagate_uplink_status": false,
		})
		if p.AdminStateUp {
			p.Status = StatusBuild
		} else {
			p.Status = StatusDown
		}
	}
	return map[string]any{"devices": out, "failed_devices": []string{}}, nil
}

// updateDeviceList is RpcCallbacks.update_device_list: up -> ACTIVE for ports bound to the
// host, down -> DOWN.
func (s *Server) updateDeviceList(_ context.Context, req *rpc.Request) (any, error) {
	var up, down []string
	var host string
	if err := decodeArg(req, "devices_up", &up); err != nil {
		return nil, err
	}
	if err := decodeArg(req, "devices_down", &down); err != nil {
		return nil, err
	}
	if err := decodeArg(req, "host", &host); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range up {
		if p, ok := s.ports[id]; ok && p.Host == host && !p.BindingFailed {
			p.Status = StatusActive
		}
	}
	downs := []map[string]any{}
	for _, id := range down {
		p, ok := s.ports[id]
		if ok && p.Host == host {
			p.Status = StatusDown
		}
		downs = append(downs, map[string]any{"device": id, "exists": ok})
	}
	return map[string]any{"devices_up": nonNil(up), "failed_devices_up": []string{},
		"devices_down": downs, "failed_devices_down": []string{}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// adminContext is the context neutron-server's notifier casts carry (trimmed: the agent does
// not look at it).
func adminContext() rpc.Context {
	c := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	c["tenant_id"], c["tenant_name"] = nil, nil
	return c
}

// NotifyPortUpdate casts port_update 1.0 on q-agent-notifier-port-update_fanout, as ML2's
// AgentNotifierApi does after a port changes.
func (s *Server) NotifyPortUpdate(ctx context.Context, conn *rpc.Conn, id string) error {
	p, ok := s.Port(id)
	if !ok {
		return fmt.Errorf("notify port_update: no port %s", id)
	}
	var seg any
	if p.SegmentationID != nil {
		seg = *p.SegmentationID
	}
	port := map[string]any{"id": p.ID, "network_id": p.NetworkID, "mac_address": p.MAC,
		"admin_state_up": p.AdminStateUp, "status": p.Status, "binding:host_id": p.Host, "device_owner": p.DeviceOwner}
	return conn.Cast(ctx, rpc.Target{Topic: "q-agent-notifier-port-update", Fanout: true, Version: "1.0"}, adminContext(), "port_update",
		map[string]any{"port": port, "network_type": p.NetworkType, "segmentation_id": seg, "physical_network": p.PhysicalNetwork})
}

// NotifyPortDelete casts port_delete 1.0 on q-agent-notifier-port-delete_fanout.
func (s *Server) NotifyPortDelete(ctx context.Context, conn *rpc.Conn, id string) error {
	return conn.Cast(ctx, rpc.Target{Topic: "q-agent-notifier-port-delete", Fanout: true, Version: "1.0"}, adminContext(), "port_delete",
		map[string]any{"port_id": id})
}

// NotifyNetworkUpdate casts network_update 1.0 on q-agent-notifier-network-update_fanout.
func (s *Server) NotifyNetworkUpdate(ctx context.Context, conn *rpc.Conn, networkID string) error {
	return conn.Cast(ctx, rpc.Target{Topic: "q-agent-notifier-network-update", Fanout: true, Version: "1.0"}, adminContext(), "network_update",
		map[string]any{"network": map[string]any{"id": networkID}})
}
