package neutron

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/neutron/neutrontest"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc/rpctest"
	"github.com/nova-container-agent/nova-container-agent/ovs"
	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

const testCookie = 0x4e43410000000077

// env is one agent wired to stateful fakes: the in-memory broker with a fake neutron-server,
// the in-memory OVSDB with a fake vswitchd, and the fake ovs-ofctl, driven through the real
// ovs.Switch.
type env struct {
	t       *testing.T
	ctx     context.Context
	broker  *rpctest.Broker
	srvConn *rpc.Conn
	fake    *neutrontest.Server
	ovsdb   *ovstest.Server
	ovsc    *ovs.Client
	ofctl   *ovstest.FakeOFCtl
	intBr   string
	physBr  string
	host    string
	cfg     Config

	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("NCA_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t *testing.T, host string) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, broker: rpctest.NewBroker(), fake: neutrontest.NewServer(), host: host}
	var err error
	e.srvConn, err = rpc.Dial(ctx, "rabbit://fake/", rpc.WithDialer(e.broker.Dial), rpc.WithDefaultExchange("neutron"),
		rpc.WithBinary("neutron-server"), rpc.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("dial fake broker: %v", err)
	}
	t.Cleanup(func() { _ = e.srvConn.Close() })
	sctx, scancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- e.fake.Serve(sctx, e.srvConn, "neutron") }()
	t.Cleanup(func() { scancel(); <-served })
	e.waitFor("fake neutron-server consuming", func() bool {
		for _, q := range []string{neutrontest.TopicPlugin, neutrontest.TopicReports} {
			if qi, ok := e.broker.Queue(q); !ok || qi.Consumers == 0 {
				return false
			}
		}
		return true
	})

	e.ovsdb = ovstest.NewServer(t)
	e.ovsdb.EmulateVSwitchd(t)
	e.ovsc, e.intBr, e.physBr = ovstest.Dial(t, e.ovsdb.Endpoint(), "netdev", ovs.DefaultOwner)
	e.ofctl = ovstest.NewFakeOFCtl(e.intBr, e.physBr)

	e.cfg = DefaultConfig()
	e.cfg.IntegrationBridge = e.intBr
	e.cfg.BridgeMappings = map[string]string{"physnet1": e.physBr}
	e.cfg.DatapathType = "netdev"
	e.cfg.HypervisorHostname = "vm"
	e.cfg.ReportInterval = time.Hour // tests that need periodic reports lower it
	e.cfg.PollingInterval = 20 * time.Millisecond
	e.cfg.RPCTimeout = 5 * time.Second
	return e
}

// start runs a fresh agent (a new process, as far as neutron can tell) until stop.
func (e *env) start() {
	e.t.Helper()
	conn, err := rpc.Dial(e.ctx, "rabbit://fake/", rpc.WithDialer(e.broker.Dial), rpc.WithDefaultExchange("neutron"),
		rpc.WithBinary(Binary), rpc.WithLogger(testLogger(e.t)))
	if err != nil {
		e.t.Fatalf("dial fake broker: %v", err)
	}
	sw := ovs.NewSwitch(e.ovsc, flows.NewApplier(e.ofctl, testCookie))
	a, err := NewAgent(conn, e.host, e.cfg, e.ovsc, NewSwitchDataplane(sw), testLogger(e.t))
	if err != nil {
		e.t.Fatalf("NewAgent: %v", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	e.agent, e.cancel, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Run(ctx); _ = conn.Close() }()
	e.t.Cleanup(e.stop)
	e.waitFor("agent running", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.running && a.firstPass
	})
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("Run: %v", err)
	}
	e.cancel = nil
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// neutronPort is the recorded vm1 port (fixtures: c2-vif-plug) bound to the env's host.
func (e *env) neutronPort(id string, seg int) neutrontest.Port {
	s := seg
	return neutrontest.Port{ID: id, NetworkID: "127b9365-de17-4bbd-8ce0-8028b579947b", MAC: "fa:16:3e:ab:98:cc",
		DeviceOwner: "compute:nova", AdminStateUp: true, Host: e.host, Status: neutrontest.StatusDown,
		NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: &s, MTU: 1500,
		FixedIPs: []map[string]string{{"subnet_id": "76341cf6-4e5e-4bcd-abb2-44083c07de4d", "ip_address": "192.0.2.139"}}}
}

// plug adds the port to br-int the way the driver does (os-vif's external_ids, no tag).
func (e *env) plug(id, mac string) string {
	e.t.Helper()
	name := ovs.TapName(id)
	if err := e.ovsc.AddPort(e.ctx, ovs.PortSpec{Name: name, PortID: id, MAC: mac, InstanceUUID: "dfecc2dd-3e37-488e-82be-6c5fd2f1613a"}); err != nil {
		e.t.Fatalf("plug %s: %v", id, err)
	}
	return name
}

// waitCached waits until the client's monitor cache shows port name with the ofport the fake
// vswitchd assigns: the agent scans that cache, and a Resync issued before it shows the port
// answers ErrPortNotFound (the production path then picks the port up at the next poll).
func (e *env) waitCached(name string) {
	e.t.Helper()
	e.waitFor("port "+name+" in the OVSDB cache with an ofport", func() bool {
		recs, err := e.ovsc.ListPorts(e.ctx)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.Name == name && r.OFPort > 0 {
				return true
			}
		}
		return false
	})
}

func (e *env) tag(name string) int {
	e.t.Helper()
	p, err := e.ovsc.LookupPort(e.ctx, name)
	if err != nil {
		e.t.Fatalf("lookup port %s: %v", name, err)
	}
	if p.Tag == nil {
		return 0
	}
	return *p.Tag
}

// hasFlow reports whether one of our flows on bridge contains all the substrings.
func (e *env) hasFlow(bridge string, subs ...string) bool {
	for _, f := range e.ofctl.Flows(bridge)[testCookie] {
		s := f.String(testCookie)
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(s, sub)
		}
		if all {
			return true
		}
	}
	return false
}

func loadJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// roundTrip returns v as JSON-decoded generic values.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func argsOf(t *testing.T, c neutrontest.Call) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, raw := range c.Args {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s arg %s: %v", c.Method, k, err)
		}
		out[k] = v
	}
	return out
}

func keys(m map[string]any) string {
	return fmt.Sprint(slices.Sorted(maps.Keys(m)))
}

// roundTripRaw returns v's JSON as the rpc package would put it on the wire (compact).
func roundTripRaw(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
