package ovstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/ovs"
)

// Names returns unique, short (≤ 15 chars) integration and physical bridge names for a test.
func Names(t testing.TB) (intBr, physBr string) {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random: %v", err)
	}
	s := hex.EncodeToString(b[:])
	return "br-ti-" + s, "br-tp-" + s
}

// Dial opens an ovs.Client for endpoint with fresh bridge names mapped as physnet1, and
// deletes those bridges when t ends.
func Dial(t testing.TB, endpoint, datapath, owner string) (*ovs.Client, string, string) {
	t.Helper()
	intBr, physBr := Names(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ovs.Dial(ctx, endpoint, ovs.WithIntegrationBridge(intBr), ovs.WithBridgeMapping("physnet1", physBr),
		ovs.WithDatapathType(datapath), ovs.WithOwner(owner))
	if err != nil {
		t.Fatalf("dial ovsdb %s: %v", endpoint, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, br := range []string{intBr, physBr} {
			if err := c.DeleteBridge(ctx, br); err != nil {
				t.Errorf("cleanup bridge %s: %v", br, err)
			}
		}
		c.Close()
	})
	return c, intBr, physBr
}

// RunConformance runs the ovs.Client suite against the OVSDB at endpoint; the in-memory Server
// and a real ovsdb-server must both pass it.
func RunConformance(t *testing.T, endpoint, datapath string) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return c
	}
	spec := func(n int) ovs.PortSpec {
		id := []string{"6e6f7a5c-1111-4222-8333-444455556666", "7a7b7c7d-2222-4333-8444-555566667777", "8a8b8c8d-3333-4444-8555-666677778888"}[n]
		return ovs.PortSpec{Name: ovs.TapName(id), PortID: id, MAC: "fa:16:3e:12:34:5" + string(rune('0'+n)),
			InstanceUUID: "d1f2a3b4-0000-4000-8000-00000000000" + string(rune('0'+n))}
	}
	vlanNet := &ovs.Binding{NetworkID: "d1f2a3b4-0000-4000-8000-0000000000aa", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}

	t.Run("EnsureBridges", func(t *testing.T) {
		c, intBr, physBr := Dial(t, endpoint, datapath, "conformance")
		for i := 0; i < 2; i++ { // the second pass must be a no-op that still succeeds
			if err := c.EnsureBridges(ctx(t)); err != nil {
				t.Fatalf("pass %d: %v", i, err)
			}
		}
		for _, name := range []string{intBr, physBr} {
			br, err := c.LookupBridge(ctx(t), name)
			if err != nil {
				t.Fatalf("bridge %s: %v", name, err)
			}
			if br.FailMode == nil || *br.FailMode != "secure" {
				t.Errorf("bridge %s fail_mode = %v, want secure", name, br.FailMode)
			}
			if br.DatapathType != datapath {
				t.Errorf("bridge %s datapath_type = %q, want %q", name, br.DatapathType, datapath)
			}
			for _, p := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow14"} {
				if !slices.Contains(br.Protocols, p) {
					t.Errorf("bridge %s protocols %v lack %s", name, br.Protocols, p)
				}
			}
		}
		intPatch, physPatch := ovs.InterfaceName(physBr, "int-"), ovs.InterfaceName(physBr, "phy-")
		for br, want := range map[string][]string{intBr: {intBr, intPatch}, physBr: {physBr, physPatch}} {
			got, err := c.BridgePortNames(ctx(t), br)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ports of %s = %v, want %v", br, got, want)
			}
		}
		for name, peer := range map[string]string{intPatch: physPatch, physPatch: intPatch} {
			i, err := c.LookupInterface(ctx(t), name)
			if err != nil {
				t.Fatal(err)
			}
			if i.Type != "patch" || i.Options["peer"] != peer {
				t.Errorf("interface %s type=%q options=%v, want patch with peer %s", name, i.Type, i.Options, peer)
			}
		}
	})

	t.Run("AddListUpdateDelete", func(t *testing.T) {
		c, intBr, _ := Dial(t, endpoint, datapath, "conformance")
		if err := c.EnsureBridges(ctx(t)); err != nil {
			t.Fatal(err)
		}
		s := spec(0)
		s.Tag = ovs.DeadVLAN
		if err := c.AddPort(ctx(t), s); err != nil {
			t.Fatalf("add port: %v", err)
		}
		i, err := c.LookupInterface(ctx(t), s.Name)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"iface-id": s.PortID, "iface-status": "active", "attached-mac": s.MAC, "vm-uuid": s.InstanceUUID, ovs.OwnerKey: "conformance"} {
			if i.ExternalIDs[k] != v {
				t.Errorf("interface external_ids[%s] = %q, want %q", k, i.ExternalIDs[k], v)
			}
		}
		// Bind: same port, local VLAN 1 and neutron's other_config, updated in place.
		s.Tag, s.Binding = 1, vlanNet
		if err := c.AddPort(ctx(t), s); err != nil {
			t.Fatalf("re-add port bound: %v", err)
		}
		p, err := c.LookupPort(ctx(t), s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Tag == nil || *p.Tag != 1 {
			t.Errorf("port tag = %v, want 1", p.Tag)
		}
		wantOC := map[string]string{"net_uuid": vlanNet.NetworkID, "network_type": "vlan", "physical_network": "physnet1", "segmentation_id": "101", "tag": "1"}
		if !maps.Equal(p.OtherConfig, wantOC) {
			t.Errorf("port other_config = %v, want %v", p.OtherConfig, wantOC)
		}
		// Re-plugged as os-vif does (no tag): the binding stays, only external_ids are rewritten.
		replug := s
		replug.Tag, replug.Binding = 0, nil
		if err := c.AddPort(ctx(t), replug); err != nil {
			t.Fatalf("re-plug bound port: %v", err)
		}
		if p, err := c.LookupPort(ctx(t), s.Name); err != nil || p.Tag == nil || *p.Tag != 1 || !maps.Equal(p.OtherConfig, wantOC) {
			t.Errorf("after a re-plug: port %+v, %v; want tag 1 and the binding kept", p, err)
		}
		got, err := c.ListPorts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("ListPorts = %+v, want one port", got)
		}
		r := got[0]
		if r.Name != s.Name || r.Bridge != intBr || r.PortID != s.PortID || r.MAC != s.MAC || r.InstanceUUID != s.InstanceUUID || r.Tag != 1 || r.Binding == nil || *r.Binding != *vlanNet {
			t.Errorf("ListPorts[0] = %+v (binding %+v)", r, r.Binding)
		}
		if err := c.SetPortVLAN(ctx(t), s.Name, ovs.DeadVLAN, nil); err != nil {
			t.Fatalf("set dead vlan: %v", err)
		}
		if got, _ := c.ListPorts(ctx(t)); len(got) != 1 || got[0].Tag != ovs.DeadVLAN || got[0].Binding != nil {
			t.Errorf("after port_dead ListPorts = %+v", got)
		}
		if err := c.DeletePort(ctx(t), s.Name); err != nil {
			t.Fatalf("delete port: %v", err)
		}
		if err := c.DeletePort(ctx(t), s.Name); err != nil {
			t.Fatalf("delete missing port must succeed: %v", err)
		}
		if got, _ := c.ListPorts(ctx(t)); len(got) != 0 {
			t.Errorf("after delete ListPorts = %+v", got)
		}
		if _, err := c.LookupInterface(ctx(t), s.Name); !errors.Is(err, ovs.ErrNotFound) {
			t.Errorf("interface row left behind: %v", err)
		}
		names, _ := c.BridgePortNames(ctx(t), intBr)
		if slices.Contains(names, s.Name) {
			t.Errorf("bridge still lists %s: %v", s.Name, names)
		}
	})

	t.Run("InvalidInputChangesNothing", func(t *testing.T) {
		c, _, _ := Dial(t, endpoint, datapath, "conformance")
		if err := c.EnsureBridges(ctx(t)); err != nil {
			t.Fatal(err)
		}
		bad := []ovs.PortSpec{
			{Name: "", PortID: "x", MAC: "fa:16:3e:00:00:01"},
			{Name: "tap-way-too-long-name", PortID: "x", MAC: "fa:16:3e:00:00:01"},
			{Name: "tapx", PortID: "", MAC: "fa:16:3e:00:00:01"},
			{Name: "tapx", PortID: "x", MAC: "not-a-mac"},
			{Name: "tapx", PortID: "x", MAC: "fa:16:3e:00:00:01", Tag: 4096},
			{Name: "tapx", PortID: "x", MAC: "fa:16:3e:00:00:01", Tag: 0, Binding: vlanNet},
			{Name: "tapx", PortID: "x", MAC: "fa:16:3e:00:00:01", Tag: 3, Binding: &ovs.Binding{NetworkID: "n", NetworkType: "vxlan", PhysicalNetwork: "p", SegmentationID: 5}},
		}
		for _, s := range bad {
			if err := c.AddPort(ctx(t), s); !errors.Is(err, ovs.ErrInvalid) {
				t.Errorf("AddPort(%+v) = %v, want ErrInvalid", s, err)
			}
		}
		if got, _ := c.ListPorts(ctx(t)); len(got) != 0 {
			t.Errorf("invalid specs left ports: %+v", got)
		}
	})

	t.Run("TwoAgentsTwoBridgePairs", func(t *testing.T) {
		a, intA, _ := Dial(t, endpoint, datapath, "agent-a")
		b, intB, _ := Dial(t, endpoint, datapath, "agent-b")
		for _, c := range []*ovs.Client{a, b} {
			if err := c.EnsureBridges(ctx(t)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.AddPort(ctx(t), spec(0)); err != nil {
			t.Fatal(err)
		}
		if err := b.AddPort(ctx(t), spec(1)); err != nil {
			t.Fatal(err)
		}
		la, _ := a.ListPorts(ctx(t))
		lb, _ := b.ListPorts(ctx(t))
		if len(la) != 1 || la[0].Name != spec(0).Name || la[0].Bridge != intA {
			t.Errorf("agent a lists %+v", la)
		}
		if len(lb) != 1 || lb[0].Name != spec(1).Name || lb[0].Bridge != intB {
			t.Errorf("agent b lists %+v", lb)
		}
		// Agent a must not take over or delete b's port.
		s := spec(1)
		if err := a.AddPort(ctx(t), s); !errors.Is(err, ovs.ErrConflict) {
			t.Errorf("a.AddPort(b's port) = %v, want ErrConflict", err)
		}
		if err := a.DeletePort(ctx(t), s.Name); !errors.Is(err, ovs.ErrConflict) {
			t.Errorf("a.DeletePort(b's port) = %v, want ErrConflict", err)
		}
		if lb, _ := b.ListPorts(ctx(t)); len(lb) != 1 {
			t.Errorf("b's port disturbed: %+v", lb)
		}
	})

	t.Run("RecoverAfterReconnect", func(t *testing.T) {
		c, intBr, physBr := Dial(t, endpoint, datapath, "conformance")
		if err := c.EnsureBridges(ctx(t)); err != nil {
			t.Fatal(err)
		}
		flat := &ovs.Binding{NetworkID: "d1f2a3b4-0000-4000-8000-0000000000bb", NetworkType: "flat", PhysicalNetwork: "physnet1"}
		s0, s1 := spec(0), spec(1)
		s0.Tag, s0.Binding = 7, vlanNet
		s1.Tag, s1.Binding = 8, flat
		for _, s := range []ovs.PortSpec{s0, s1} {
			if err := c.AddPort(ctx(t), s); err != nil {
				t.Fatal(err)
			}
		}
		c2, err := ovs.Dial(ctx(t), endpoint, ovs.WithIntegrationBridge(intBr), ovs.WithBridgeMapping("physnet1", physBr),
			ovs.WithDatapathType(datapath), ovs.WithOwner("conformance"))
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		got, err := c2.ListPorts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Tag+got[1].Tag != 15 {
			t.Fatalf("recovered %+v", got)
		}
		for _, r := range got {
			want := vlanNet
			if r.Tag == 8 {
				want = flat
			}
			if r.Binding == nil || *r.Binding != *want {
				t.Errorf("port %s recovered binding %+v, want %+v", r.Name, r.Binding, want)
			}
		}
	})
}
