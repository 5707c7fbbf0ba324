package cloud_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
)

// TestNeutronServerCreateMatchesNova replays the neutron half of the
// recorded server create (http-c): the compute creates the port with the
// user's token, binds it with the admin client, then reads what
// get_instance_nw_info reads, every request with a service token beside.
func TestNeutronServerCreateMatchesNova(t *testing.T) {
	recs := loadRecording(t, "http-c-server-create.jsonl", "http://127.0.0.1:9696")
	rp := newReplay(t, recs)
	k := newKeystone(t, "neutron", "nova", "demo")
	k.SetEndpoint("network", rp.srv.URL)
	admin := session(t, k, "neutron", "network")
	svcUser := session(t, k, "nova", "identity")
	nt, err := cloud.NewNeutron(admin, svcUser, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	userTok, err := session(t, k, "demo", "identity").Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := cloud.WithRequestID(cloud.WithUserToken(context.Background(), userTok), "req-03025ba0-test")
	const (
		inst    = "dfecc2dd-3e37-488e-82be-6c5fd2f1613a"
		net     = "127b9365-de17-4bbd-8ce0-8028b579947b"
		project = "b811a370f567435986433f0defd38e90"
		subnet  = "76341cf6-4e5e-4bcd-abb2-44083c07de4d"
	)
	nets, err := nt.ListNetworks(ctx, []string{net})
	if err != nil || len(nets) != 1 || nets[0].NetworkType != "vlan" || *nets[0].SegmentationID != 101 || nets[0].MTU != 1500 {
		t.Fatalf("ListNetworks: %+v %v", nets, err)
	}
	port, err := nt.CreatePort(ctx, cloud.PortCreate{NetworkID: net, DeviceID: inst, AdminStateUp: true, TenantID: project})
	if err != nil || port.MACAddress != "fa:16:3e:ab:98:cc" || port.BindingVIFType != "unbound" {
		t.Fatalf("CreatePort: %+v %v", port, err)
	}
	if exts, err := nt.Extensions(ctx); err != nil || len(exts) < 10 {
		t.Fatalf("Extensions: %d %v", len(exts), err)
	}
	host, owner, dev := "fake-1", "compute:nova", inst
	bound, err := nt.UpdatePort(ctx, port.ID, cloud.PortUpdate{DeviceID: &dev, DeviceOwner: &owner, BindingHostID: &host})
	if err != nil || bound.BindingVIFType != "ovs" || bound.BindingVIFDetails["bridge_name"] != "br-int" ||
		bound.BindingVIFDetails["datapath_type"] != "netdev" {
		t.Fatalf("UpdatePort: %+v %v", bound, err)
	}
	for round := range 2 {
		ports, err := nt.ListPorts(ctx, cloud.PortFilter{TenantID: project, DeviceID: inst})
		if err != nil || len(ports) != 1 || ports[0].BindingHostID != "fake-1" {
			t.Fatalf("ListPorts: %+v %v", ports, err)
		}
		subs, err := nt.ListSubnets(ctx, []string{subnet})
		if err != nil || len(subs) != 1 || subs[0].CIDR != "192.0.2.0/24" || subs[0].GatewayIP != "192.0.2.1" {
			t.Fatalf("ListSubnets: %+v %v", subs, err)
		}
		if dhcp, err := nt.ListPorts(ctx, cloud.PortFilter{NetworkID: net, DeviceOwner: "network:dhcp"}); err != nil || len(dhcp) != 0 {
			t.Fatalf("dhcp ports: %+v %v", dhcp, err)
		}
		if n, err := nt.GetNetwork(ctx, net, "segments"); err != nil || len(n.Segments) != 0 {
			t.Fatalf("segments: %+v %v", n, err)
		}
		n, err := nt.GetNetwork(ctx, net, "provider:physical_network", "provider:network_type")
		if err != nil || n.PhysicalNetwork != "physnet1" {
			t.Fatalf("provider attrs: %+v %v", n, err)
		}
		if round == 0 { // the second get_instance_nw_info starts with the networks
			if _, err := nt.ListNetworks(ctx, []string{net}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Everything nova asked for was asked for, except the floating IP
	// look-ups (404 without an L3 plugin), which the agent does not make.
	for i, used := range rp.used {
		if !used && recs[i].Status != http.StatusNotFound {
			t.Errorf("recorded request not made: %s %s", recs[i].Method, recs[i].URL)
		}
	}

	// Which credentials each call used: the port binding is admin-only.
	for _, s := range rp.seen {
		tok, svc := s.Header.Get("X-Auth-Token"), s.Header.Get("X-Service-Token")
		if k.UserOf(svc) != "nova" {
			t.Errorf("%s %s: X-Service-Token of %q, want nova's", s.Method, s.Path, k.UserOf(svc))
		}
		want := "demo"
		if s.Method == http.MethodPut {
			want = "neutron"
		}
		if k.UserOf(tok) != want {
			t.Errorf("%s %s: token of %q, want %q", s.Method, s.Path, k.UserOf(tok), want)
		}
		if s.Header.Get("X-Openstack-Request-Id") != "req-03025ba0-test" {
			t.Errorf("%s %s: request id %q", s.Method, s.Path, s.Header.Get("X-Openstack-Request-Id"))
		}
	}
}

func TestNeutronBindingFailedAndUnbind(t *testing.T) {
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"port": {"id": "p1", "binding:vif_type": "binding_failed", "binding:host_id": "h1"}}`))
	}))
	t.Cleanup(srv.Close)
	k := newKeystone(t, "neutron")
	nt, err := cloud.NewNeutron(session(t, k, "neutron", "network"), nil, srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nt.UpdatePort(context.Background(), "p1", cloud.PortUpdate{UnbindHost: true})
	if !errors.Is(err, cloud.ErrPortBindingFailed) || p == nil {
		t.Fatalf("err = %v", err)
	}
	if gotBody != `{"port":{"binding:host_id":null}}` {
		t.Errorf("unbind body %s", gotBody)
	}
}

func TestFakeNeutronPortConformance(t *testing.T) {
	n := cloudtest.NewNeutron()
	n.AddNetwork(cloud.Network{ID: "5c8e7d4a-1b2c-4d3e-9f00-0a1b2c3d4e5f", Name: "net"})
	cloudtest.RunPortSuite(t, n, "5c8e7d4a-1b2c-4d3e-9f00-0a1b2c3d4e5f")
}
