//go:build integration

package neutron

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/ovs"
	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// osEnv returns the environment of admin-openrc (export lines) on top of ours.
func osEnv(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(envOr("NCA_AIO_DIR", "/var/lib/nca-aio"), "admin-openrc")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the all-in-one is not set up (%v): run tests/aio/up.sh", err)
	}
	defer f.Close()
	env := os.Environ()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "export ") {
			continue
		}
		kv := strings.TrimPrefix(line, "export ")
		if k, v, ok := strings.Cut(kv, "="); ok {
			env = append(env, k+"="+strings.Trim(v, `"'`))
		}
	}
	return env
}

type cli struct {
	t   *testing.T
	env []string
}

func (c cli) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openstack", args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("openstack %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.must(append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("openstack %v: %v: %s", args, err, out)
	}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func poll(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Second)
	}
}

// TestRealNeutron runs the agent against the all-in-one's neutron-server over RabbitMQ and a
// real OVS: the agent shows up alive as an "Open vSwitch agent", ML2 binds a port to its host
// with vif_type ovs, plugging the port makes it ACTIVE and unplugging it makes it DOWN.
func TestRealNeutron(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (veth, OVS)")
	}
	osc := cli{t: t, env: osEnv(t)}
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("openstack CLI not installed: run tests/aio/up.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	suffix := randHex(t, 3)
	host := "nca-l2-test-" + suffix
	rabbitURL := envOr("NCA_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")

	// OVS: private bridges, physnet1 mapped to ours.
	ovsc, intBr, physBr := ovstest.Dial(t, envOr("NCA_OVSDB", "unix:/var/run/openvswitch/db.sock"), "netdev", ovs.DefaultOwner)
	const cookie = 0x4e434100000000aa
	app := flows.NewApplier(flows.ExecRunner{}, cookie)
	t.Cleanup(func() {
		for _, br := range []string{intBr, physBr} {
			_ = app.Clear(context.Background(), br)
		}
	})
	sw := ovs.NewSwitch(ovsc, app)

	conn, err := rpc.Dial(ctx, rabbitURL, rpc.WithBinary(Binary), rpc.WithDefaultExchange("neutron"))
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v", rabbitURL, err)
	}
	defer conn.Close()
	t.Cleanup(func() { deleteHostQueues(t, rabbitURL, host) })

	cfg := DefaultConfig()
	cfg.IntegrationBridge = intBr
	cfg.BridgeMappings = map[string]string{"physnet1": physBr}
	cfg.DatapathType = "netdev"
	cfg.PollingInterval = time.Second
	a, err := NewAgent(conn, host, cfg, ovsc, NewSwitchDataplane(sw), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	stopped := false
	stopAgent := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stopAgent()

	// 1. The agent is alive with our type.
	var agentID string
	poll(t, "agent alive in neutron", 60*time.Second, func() bool {
		var agents []map[string]any
		osc.json(&agents, "network", "agent", "list", "--host", host)
		for _, ag := range agents {
			if ag["Agent Type"] == AgentType && ag["Alive"] == true && ag["Binary"] == Binary {
				agentID, _ = ag["ID"].(string)
				return true
			}
		}
		return false
	})
	t.Cleanup(func() {
		stopAgent()
		if _, err := osc.run("network", "agent", "delete", agentID); err != nil {
			t.Errorf("cleanup agent: %v", err)
		}
	})

	// 2. A VLAN provider network with a free segment and a port bound to our host.
	netName := "nca-l2-test-" + suffix
	var net map[string]any
	for seg := 100 + int(suffix[0])%100; ; seg++ {
		if seg > 199 {
			seg = 100
		}
		out, err := osc.run("network", "create", "--provider-network-type", "vlan", "--provider-physical-network", "physnet1",
			"--provider-segment", fmt.Sprint(seg), netName, "-f", "json")
		if err == nil {
			if err := json.Unmarshal([]byte(out), &net); err != nil {
				t.Fatal(err)
			}
			break
		}
		if !strings.Contains(err.Error(), "in use") && !strings.Contains(err.Error(), "Conflict") {
			t.Fatal(err)
		}
	}
	netID := net["id"].(string)
	segment := int(net["provider:segmentation_id"].(float64))
	t.Cleanup(func() {
		if _, err := osc.run("network", "delete", netID); err != nil {
			t.Errorf("cleanup network: %v", err)
		}
	})
	osc.must("subnet", "create", "--network", netID, "--subnet-range", "198.51.100.0/24", "--no-dhcp", netName)
	var port map[string]any
	osc.json(&port, "port", "create", "--network", netID, "--host", host, "nca-l2-test-"+suffix)
	pid := port["id"].(string)
	pmac := port["mac_address"].(string)
	t.Cleanup(func() {
		if _, err := osc.run("port", "delete", pid); err != nil {
			t.Errorf("cleanup port: %v", err)
		}
	})
	if port["binding_vif_type"] != "ovs" {
		t.Fatalf("port bound with vif_type %v, want ovs (details %v)", port["binding_vif_type"], port["binding_vif_details"])
	}

	// The real server's device details have every key the fake neutron-server answers with.
	raw, err := conn.Call(ctx, rpc.Target{Exchange: "neutron", Topic: topicPlugin, Version: versionDetails}, newAdminContext(time.Now()),
		"get_devices_details_list_and_failed_devices", map[string]any{"devices": []string{pid}, "agent_id": "ovs-agent-" + host, "host": host}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var real map[string]any
	if err := json.Unmarshal(raw, &real); err != nil {
		t.Fatal(err)
	}
	fakeDet := loadJSON(t, "get_devices_details.reply.json")["devices"].([]any)[0].(map[string]any)
	realDet := real["devices"].([]any)[0].(map[string]any)
	if keys(realDet) != keys(fakeDet) {
		t.Errorf("real details keys %s, testdata %s", keys(realDet), keys(fakeDet))
	}
	if realDet["network_type"] != "vlan" || int(realDet["segmentation_id"].(float64)) != segment {
		t.Errorf("real details %v", realDet)
	}

	// 3. Plug: a veth end on our br-int with os-vif's external_ids.
	dev := "nca" + suffix
	peer := "ncp" + suffix
	if out, err := exec.Command("ip", "link", "add", dev, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", dev).Run() })
	for _, l := range []string{dev, peer} {
		if out, err := exec.Command("ip", "link", "set", l, "up").CombinedOutput(); err != nil {
			t.Fatalf("link up %s: %v: %s", l, err, out)
		}
	}
	if err := ovsc.AddPort(ctx, ovs.PortSpec{Name: dev, PortID: pid, MAC: pmac, InstanceUUID: "00000000-0000-4000-8000-" + suffix + suffix}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	start := time.Now()
	if err := a.Resync(rctx, pid); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	t.Logf("port reported up %s after plug", time.Since(start).Round(time.Millisecond))
	status := func() string {
		var p map[string]any
		osc.json(&p, "port", "show", pid)
		s, _ := p["status"].(string)
		return s
	}
	poll(t, "port ACTIVE", 60*time.Second, func() bool { return status() == "ACTIVE" })
	op, err := ovsc.LookupPort(ctx, dev)
	if err != nil || op.Tag == nil || *op.Tag < 1 || *op.Tag > 4094 {
		t.Fatalf("port tag after bind: %v %v", op.Tag, err)
	}
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", physBr, fmt.Sprintf("cookie=%#x/-1", cookie)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("dl_vlan=%d", *op.Tag)) || !strings.Contains(string(out), fmt.Sprintf("%d->vlan_vid", 0x1000|segment)) {
		t.Errorf("no local->provider translation on %s: %v\n%s", physBr, err, out)
	}

	// 4. Unplug: DOWN.
	if err := ovsc.DeletePort(ctx, dev); err != nil {
		t.Fatal(err)
	}
	poll(t, "port DOWN", 60*time.Second, func() bool { return status() == "DOWN" })
}

// deleteHostQueues removes the per-host topic queues our consumers declared (oslo never deletes
// them; a test host should not leave them behind). The shared topic queues stay: real agents
// use them too.
func deleteHostQueues(t *testing.T, url, host string) {
	c, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup queues: %v", err)
		return
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Errorf("cleanup queues: %v", err)
		return
	}
	for _, topic := range []string{topicPortUpdate, topicPortDelete, topicNetworkUpdate} {
		if _, err := ch.QueueDelete(topic+"."+host, false, false, false); err != nil {
			t.Errorf("cleanup queue %s.%s: %v", topic, host, err)
			return
		}
	}
}
