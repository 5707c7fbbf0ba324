package neutron

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/neutron/neutrontest"
	"github.com/nova-container-agent/nova-container-agent/ovs"
)

const (
	portID = "79e4bd27-ac0f-424b-8a91-852efc04adf5"
	netID  = "127b9365-de17-4bbd-8ce0-8028b579947b"
	mac    = "fa:16:3e:ab:98:cc"
)

// fixtureConfig is the configuration of the recorded neutron-openvswitch-agent (fake-1).
func fixtureConfig() Config {
	c := DefaultConfig()
	c.BridgeMappings = map[string]string{"physnet1": "br-phys"}
	c.DatapathType = "netdev"
	c.HypervisorHostname = "vm"
	c.OVSCapabilities = Capabilities{
		DatapathTypes: []string{"netdev", "system"},
		IfaceTypes: []string{"afxdp", "afxdp-nonpmd", "bareudp", "erspan", "geneve", "gre", "gtpu", "internal",
			"ip6erspan", "ip6gre", "lisp", "patch", "stt", "system", "tap", "vxlan"},
	}
	return c
}

// TestAgentStateMatchesFixture compares agent_state field by field with the recorded first
// (start_flag, resource_versions) and periodic report_state of neutron-openvswitch-agent.
func TestAgentStateMatchesFixture(t *testing.T) {
	for _, tc := range []struct {
		file string
		r    stateReport
	}{
		{"report_state_first.json", stateReport{devices: 0, startFlag: true, resourceVersions: true}},
		{"report_state_periodic.json", stateReport{devices: 0}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec := loadJSON(t, tc.file)
			want := rec["args"].(map[string]any)["agent_state"].(map[string]any)["agent_state"].(map[string]any)
			got := roundTrip(t, agentState(fixtureConfig(), "fake-1", tc.r)).(map[string]any)
			if u, _ := got["uuid"].(string); len(u) != 36 {
				t.Errorf("uuid = %q, want a uuid4", got["uuid"])
			}
			delete(got, "uuid")
			delete(want, "uuid")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("agent_state differs from the recording\n got %v\nwant %v", got, want)
			}
		})
	}
	// allocation_ratio is a Python float on the wire.
	b := roundTripRaw(t, agentState(fixtureConfig(), "fake-1", stateReport{}))
	if !strings.Contains(b, `"allocation_ratio":1.0`) {
		t.Errorf("allocation_ratio not rendered as 1.0: %s", b)
	}
}

// TestStartupMessages checks the wire shape of the startup traffic against the recording:
// has_alive_neutron_server then report_state with start_flag and resource_versions, the
// agent's context keys, and then a periodic report without resource_versions.
func TestStartupMessages(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.cfg.ReportInterval = 50 * time.Millisecond
	e.start()
	e.waitFor("three reports", func() bool {
		n := 0
		for _, m := range e.fake.Methods(neutrontest.TopicReports) {
			if m == "report_state" {
				n++
			}
		}
		return n >= 3
	})
	calls := e.fake.Calls()
	if calls[0].Method != "has_alive_neutron_server" || calls[0].Version != "1.2" || len(calls[0].Args) != 0 {
		t.Errorf("first call = %s %s %v, want has_alive_neutron_server 1.2 {}", calls[0].Method, calls[0].Version, calls[0].Args)
	}
	wantCtx := loadJSON(t, "has_alive_neutron_server.json")
	var wantKeys []string
	for k := range wantCtx {
		if strings.HasPrefix(k, "_context_") {
			wantKeys = append(wantKeys, strings.TrimPrefix(k, "_context_"))
		}
	}
	slices.Sort(wantKeys)
	for _, c := range calls {
		var got []string
		for k := range c.Context {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, wantKeys) {
			t.Fatalf("%s context keys %v, want the recorded %v", c.Method, got, wantKeys)
		}
		if c.Context["is_admin"] != true {
			t.Errorf("%s: context is not admin", c.Method)
		}
		if c.Context["request_id"] != calls[0].Context["request_id"] {
			t.Errorf("%s: request_id changed; the agent keeps one context", c.Method)
		}
	}
	var reports []map[string]any
	for _, c := range calls {
		if c.Method != "report_state" {
			continue
		}
		if c.Version != "1.2" || c.Topic != neutrontest.TopicReports {
			t.Errorf("report_state version %s topic %s", c.Version, c.Topic)
		}
		args := argsOf(t, c)
		if keys(args) != "[agent_state time]" {
			t.Errorf("report_state args %s", keys(args))
		}
		reports = append(reports, args["agent_state"].(map[string]any)["agent_state"].(map[string]any))
	}
	first := reports[0]
	if first["start_flag"] != true || first["resource_versions"] == nil {
		t.Errorf("first report: start_flag=%v resource_versions=%v", first["start_flag"], first["resource_versions"])
	}
	rec := loadJSON(t, "report_state_first.json")["args"].(map[string]any)["agent_state"].(map[string]any)["agent_state"].(map[string]any)
	if keys(first) != keys(rec) {
		t.Errorf("first report keys %s, recorded %s", keys(first), keys(rec))
	}
	if keys(first["configurations"].(map[string]any)) != keys(rec["configurations"].(map[string]any)) {
		t.Errorf("configurations keys differ from the recording")
	}
	last := reports[len(reports)-1]
	if _, ok := last["resource_versions"]; ok {
		t.Errorf("resource_versions sent again after the first report")
	}
	if _, ok := last["start_flag"]; ok {
		t.Errorf("start_flag still set after the first full sync")
	}
	if first["uuid"] == last["uuid"] {
		t.Errorf("uuid reused across reports")
	}
	if st, ok := e.fake.AgentState("fake-1"); !ok || st["agent_type"] != "Open vSwitch agent" {
		t.Errorf("fake server has no OVS agent for fake-1: %v", st)
	}
}

// TestPlugAndUnplug follows the recorded c2-vif-plug / d-delete sequence: details, then tag
// and flows, then update_device_list devices_up (port ACTIVE); unplug: devices_down (DOWN),
// the local VLAN and its flows go.
func TestPlugAndUnplug(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.fake.AddPort(e.neutronPort(portID, 101))
	e.start()

	name := ovs.TapName(portID)
	var tagAtUp int
	var flowsAtUp bool
	e.fake.OnCall(func(c neutrontest.Call) {
		if c.Method == "update_device_list" && len(argsOf(t, c)["devices_up"].([]any)) > 0 {
			tagAtUp = e.tag(name)
			flowsAtUp = e.hasFlow(e.physBr, "dl_vlan=1", "set_field:4197->vlan_vid") && e.hasFlow(e.intBr, "dl_vlan=101", "set_field:4097->vlan_vid")
		}
	})
	before := len(e.fake.Calls())
	e.plug(portID, mac)
	if err := e.agent.Resync(e.ctx, portID); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	calls := e.fake.Calls()[before:]
	var plugin []neutrontest.Call
	for _, c := range calls {
		if c.Topic == neutrontest.TopicPlugin {
			plugin = append(plugin, c)
		}
	}
	if got := methods(plugin); !slices.Equal(got, []string{"get_devices_details_list_and_failed_devices", "update_device_list"}) {
		t.Fatalf("plug sequence %v", got)
	}
	det := argsOf(t, plugin[0])
	if plugin[0].Version != "1.5" || !reflect.DeepEqual(det, map[string]any{"devices": []any{portID}, "agent_id": "ovs-agent-fake-1", "host": "fake-1"}) {
		t.Errorf("details request %s %v", plugin[0].Version, det)
	}
	// update_device_list exactly as recorded (c2-vif-plug), refresh_tunnels aside: the first
	// pass of this agent had nothing to report, so this is not iteration 0.
	want := loadJSON(t, "update_device_list_up.json")
	if plugin[1].Version != want["version"] || !reflect.DeepEqual(argsOf(t, plugin[1]), want["args"]) {
		t.Errorf("update_device_list %s %v, recorded %v %v", plugin[1].Version, argsOf(t, plugin[1]), want["version"], want["args"])
	}
	if tagAtUp != 1 || !flowsAtUp {
		t.Errorf("at devices_up: tag %d (want 1), translation flows %v", tagAtUp, flowsAtUp)
	}
	if p, _ := e.fake.Port(portID); p.Status != neutrontest.StatusActive {
		t.Errorf("port status %s, want ACTIVE", p.Status)
	}
	op, err := e.ovsc.LookupPort(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wantOC := map[string]string{"net_uuid": netID, "network_type": "vlan", "physical_network": "physnet1", "segmentation_id": "101", "tag": "1"}
	if !reflect.DeepEqual(op.OtherConfig, wantOC) {
		t.Errorf("Port.other_config %v, want %v", op.OtherConfig, wantOC)
	}

	// Unplug (d-delete): the driver deletes the OVS port.
	before = len(e.fake.Calls())
	if err := e.ovsc.DeletePort(e.ctx, name); err != nil {
		t.Fatal(err)
	}
	e.waitFor("port DOWN", func() bool { p, _ := e.fake.Port(portID); return p.Status == neutrontest.StatusDown })
	calls = e.fake.Calls()[before:]
	if got := methods(calls); !slices.Equal(got, []string{"update_device_list"}) {
		t.Fatalf("unplug sequence %v", got)
	}
	wantDown := loadJSON(t, "update_device_list_down.json")
	if !reflect.DeepEqual(argsOf(t, calls[0]), wantDown["args"]) {
		t.Errorf("devices_down request %v, recorded %v", argsOf(t, calls[0]), wantDown["args"])
	}
	e.waitFor("translation flows removed", func() bool {
		return !e.hasFlow(e.physBr, "set_field:4197->vlan_vid") && !e.hasFlow(e.intBr, "dl_vlan=101")
	})
	if err := e.agent.Resync(e.ctx, portID); !errors.Is(err, ErrPortNotFound) {
		t.Errorf("Resync of an unplugged port: %v, want ErrPortNotFound", err)
	}
}

func methods(cs []neutrontest.Call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Method)
	}
	return out
}

// TestUnboundPortGoesDead: a port neutron does not bind here (unknown, binding failed, bound
// elsewhere, unmapped physnet, unsupported type) is put on VLAN 4095 with a drop flow and is
// never reported up.
func TestUnboundPortGoesDead(t *testing.T) {
	e := newEnv(t, "fake-1")
	cases := []struct {
		id   string
		port *neutrontest.Port
	}{
		{"a1111111-0000-0000-0000-000000000001", nil},
		{"a2222222-0000-0000-0000-000000000002", &neutrontest.Port{BindingFailed: true}},
		{"a3333333-0000-0000-0000-000000000003", &neutrontest.Port{Host: "other-host"}},
		{"a4444444-0000-0000-0000-000000000004", &neutrontest.Port{PhysicalNetwork: "physnet9"}},
		{"a5555555-0000-0000-0000-000000000005", &neutrontest.Port{NetworkType: "vxlan"}},
	}
	for _, c := range cases {
		if c.port == nil {
			continue
		}
		p := e.neutronPort(c.id, 101)
		p.MAC = "fa:16:3e:00:00:0" + c.id[len(c.id)-1:]
		if c.port.BindingFailed {
			p.BindingFailed = true
		}
		if c.port.Host != "" {
			p.Host = c.port.Host
		}
		if c.port.PhysicalNetwork != "" {
			p.PhysicalNetwork = c.port.PhysicalNetwork
		}
		if c.port.NetworkType != "" {
			p.NetworkType = c.port.NetworkType
		}
		e.fake.AddPort(p)
	}
	e.start()
	for _, c := range cases {
		name := e.plug(c.id, "fa:16:3e:00:00:0"+c.id[len(c.id)-1:])
		e.waitCached(name)
		if err := e.agent.Resync(e.ctx, c.id); !errors.Is(err, ErrNotBound) {
			t.Errorf("%s: Resync = %v, want ErrNotBound", c.id, err)
		}
		if got := e.tag(name); got != ovs.DeadVLAN {
			t.Errorf("%s: tag %d, want 4095", c.id, got)
		}
		rec, err := e.ovsc.LookupInterface(e.ctx, name)
		if err != nil || rec.OFPort == nil {
			t.Fatalf("interface %s: %v", name, err)
		}
		if !e.hasFlow(e.intBr, "priority=2", "in_port="+strconv.Itoa(*rec.OFPort), "actions=drop") {
			t.Errorf("%s: no drop flow for ofport %d", c.id, *rec.OFPort)
		}
	}
	for _, c := range e.fake.Calls() {
		if c.Method == "update_device_list" {
			if up := argsOf(t, c)["devices_up"].([]any); len(up) > 0 {
				t.Errorf("unbound ports reported up: %v", up)
			}
		}
	}
}

// TestAdminDownAndNotifications: port_update after admin_state_up=false moves the port to the
// dead VLAN and reports it down; setting it up again and notifying brings it back; port_delete
// isolates a port still plugged; network_update reprocesses the network's ports.
func TestAdminDownAndNotifications(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.fake.AddPort(e.neutronPort(portID, 101))
	e.start()
	name := e.plug(portID, mac)
	if err := e.agent.Resync(e.ctx, portID); err != nil {
		t.Fatalf("Resync: %v", err)
	}

	e.fake.UpdatePort(portID, func(p *neutrontest.Port) { p.AdminStateUp = false })
	if err := e.fake.NotifyPortUpdate(e.ctx, e.srvConn, portID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("admin-down port on the dead vlan and reported down", func() bool {
		p, _ := e.fake.Port(portID)
		return e.tag(name) == ovs.DeadVLAN && p.Status == neutrontest.StatusDown && slices.ContainsFunc(e.fake.Calls(), func(c neutrontest.Call) bool {
			return c.Method == "update_device_list" && slices.Contains(argsOf(t, c)["devices_down"].([]any), any(portID))
		})
	})

	e.fake.UpdatePort(portID, func(p *neutrontest.Port) { p.AdminStateUp = true })
	n := len(e.fake.Calls())
	if err := e.fake.NotifyNetworkUpdate(e.ctx, e.srvConn, netID); err != nil {
		t.Fatal(err)
	}
	// The port is isolated (no network recorded), so network_update does not touch it...
	time.Sleep(100 * time.Millisecond)
	for _, c := range e.fake.Calls()[n:] {
		if c.Topic == neutrontest.TopicPlugin {
			t.Errorf("network_update reprocessed an isolated port: %s", c.Method)
		}
	}
	// ...but port_update does.
	if err := e.fake.NotifyPortUpdate(e.ctx, e.srvConn, portID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("port back on vlan 1 and ACTIVE", func() bool {
		p, _ := e.fake.Port(portID)
		return e.tag(name) == 1 && p.Status == neutrontest.StatusActive
	})
	n = len(e.fake.Calls())
	if err := e.fake.NotifyNetworkUpdate(e.ctx, e.srvConn, netID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("network_update reprocesses the bound port", func() bool {
		return slices.Contains(methods(e.fake.Calls()[n:]), "get_devices_details_list_and_failed_devices")
	})

	e.fake.DeletePort(portID)
	if err := e.fake.NotifyPortDelete(e.ctx, e.srvConn, portID); err != nil {
		t.Fatal(err)
	}
	e.waitFor("deleted port isolated", func() bool { return e.tag(name) == ovs.DeadVLAN })
	e.waitFor("translation flows reclaimed", func() bool { return !e.hasFlow(e.physBr, "set_field:4197->vlan_vid") })
}

// TestRestartResyncsAll: a new agent process re-reports every plugged port up on its first
// pass (refresh_tunnels true) and recovers the same local VLAN from OVSDB.
func TestRestartResyncsAll(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.fake.AddPort(e.neutronPort(portID, 101))
	second := "22222222-0000-0000-0000-000000000002"
	p2 := e.neutronPort(second, 101)
	p2.MAC = "fa:16:3e:00:00:22"
	e.fake.AddPort(p2)
	e.start()
	e.plug(portID, mac)
	e.plug(second, p2.MAC)
	for _, id := range []string{portID, second} {
		if err := e.agent.Resync(e.ctx, id); err != nil {
			t.Fatalf("Resync %s: %v", id, err)
		}
	}
	e.stop()

	e.fake.UpdatePort(portID, func(p *neutrontest.Port) { p.Status = neutrontest.StatusDown })
	e.fake.UpdatePort(second, func(p *neutrontest.Port) { p.Status = neutrontest.StatusDown })
	n := len(e.fake.Calls())
	e.start()
	e.waitFor("both ports ACTIVE again", func() bool {
		a, _ := e.fake.Port(portID)
		b, _ := e.fake.Port(second)
		return a.Status == neutrontest.StatusActive && b.Status == neutrontest.StatusActive
	})
	var sawRefresh bool
	for _, c := range e.fake.Calls()[n:] {
		if c.Method == "update_device_list" {
			args := argsOf(t, c)
			if len(args["devices_up"].([]any)) == 2 && args["refresh_tunnels"] == true {
				sawRefresh = true
			}
		}
	}
	if !sawRefresh {
		t.Errorf("first pass after restart did not report both ports up with refresh_tunnels")
	}
	if e.tag(ovs.TapName(portID)) != 1 || e.tag(ovs.TapName(second)) != 1 {
		t.Errorf("local vlan not recovered: %d %d", e.tag(ovs.TapName(portID)), e.tag(ovs.TapName(second)))
	}
}

// TestRevivedForcesFullSync: a "revived" answer to report_state makes the next pass fetch
// every port again.
func TestRevivedForcesFullSync(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.cfg.ReportInterval = 30 * time.Millisecond
	e.fake.AddPort(e.neutronPort(portID, 101))
	e.start()
	e.plug(portID, mac)
	if err := e.agent.Resync(e.ctx, portID); err != nil {
		t.Fatal(err)
	}
	n := len(e.fake.Calls())
	// report_state's timeout is the report interval (30 ms here), as in neutron: on a loaded
	// machine an answer can arrive too late and its "revived" is lost, so re-arm until one lands.
	e.fake.Revive("fake-1")
	e.waitFor("full sync after revived", func() bool {
		if slices.Contains(methods(e.fake.Calls()[n:]), "get_devices_details_list_and_failed_devices") {
			return true
		}
		e.fake.Revive("fake-1")
		return false
	})
}

// TestTransientFailuresAreRetried: failed details and update_device_list calls are retried and
// Resync waits for the final outcome.
func TestTransientFailuresAreRetried(t *testing.T) {
	e := newEnv(t, "fake-1")
	e.fake.AddPort(e.neutronPort(portID, 101))
	e.start()
	e.fake.FailNext("get_devices_details_list_and_failed_devices", 1)
	e.fake.FailNext("update_device_list", 1)
	e.plug(portID, mac)
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := e.agent.Resync(ctx, portID); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if p, _ := e.fake.Port(portID); p.Status != neutrontest.StatusActive {
		t.Errorf("status %s", p.Status)
	}
	if got := methods(e.fake.Calls()); strings.Count(strings.Join(got, " "), "update_device_list") < 2 {
		t.Errorf("update_device_list not retried: %v", got)
	}
}

// TestCompatModeSendsNothing: in compat mode Run returns at once and nothing reaches neutron.
func TestCompatModeSendsNothing(t *testing.T) {
	e := newEnv(t, "fake-1")
	cfg := DefaultConfig()
	cfg.Mode = ModeCompat
	a, err := NewAgent(nil, "fake-1", cfg, nil, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode() != ModeCompat || a.Mode().ManagesDataplane() {
		t.Errorf("mode %s manages dataplane %v", a.Mode(), a.Mode().ManagesDataplane())
	}
	if err := a.Run(e.ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := a.Resync(e.ctx, portID); err != nil {
		t.Errorf("Resync in compat mode: %v", err)
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Errorf("compat mode sent %v", methods(calls))
	}
}

func TestResyncBeforeRun(t *testing.T) {
	e := newEnv(t, "fake-1")
	a, err := NewAgent(e.srvConn, "fake-1", e.cfg, e.ovsc, NewSwitchDataplane(nil), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Resync(e.ctx, portID); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Resync before Run: %v, want ErrNotRunning", err)
	}
}

func TestConfig(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeFull, "full": ModeFull, " Compat ": ModeCompat} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMode("hybrid"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParseMode(hybrid): %v", err)
	}
	bad := DefaultConfig()
	bad.PollingInterval = 0
	bad.BridgeMappings = map[string]string{"physnet1": ""}
	if err := bad.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "polling_interval") || !strings.Contains(err.Error(), "physnet1") {
		t.Errorf("Validate: %v", err)
	}
	if _, err := NewAgent(nil, "h", DefaultConfig(), nil, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("full mode without dependencies: %v", err)
	}
	if _, err := NewAgent(nil, "", Config{Mode: ModeCompat}, nil, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty host: %v", err)
	}
}
