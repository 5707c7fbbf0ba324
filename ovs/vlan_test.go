package ovs_test

import (
	"errors"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/ovs"
)

func TestLocalVLANs(t *testing.T) {
	l := ovs.NewLocalVLANs()
	a := ovs.Binding{NetworkID: "a", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}
	b := ovs.Binding{NetworkID: "b", NetworkType: "flat", PhysicalNetwork: "physnet1"}
	if v, err := l.Acquire(a); err != nil || v != 1 {
		t.Fatalf("Acquire(a) = %d, %v", v, err)
	}
	if v, err := l.Acquire(b); err != nil || v != 2 {
		t.Fatalf("Acquire(b) = %d, %v", v, err)
	}
	if v, _ := l.Acquire(a); v != 1 {
		t.Errorf("re-Acquire(a) = %d, want 1", v)
	}
	moved := a
	moved.SegmentationID = 102
	if _, err := l.Acquire(moved); !errors.Is(err, ovs.ErrConflict) {
		t.Errorf("Acquire with another segment = %v, want ErrConflict", err)
	}
	l.Release("a")
	c := ovs.Binding{NetworkID: "c", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 7}
	if v, _ := l.Acquire(c); v != 1 {
		t.Errorf("freed vlan 1 not reused: got %d", v)
	}
	if _, err := l.Acquire(ovs.Binding{NetworkID: "x", NetworkType: "gre"}); !errors.Is(err, ovs.ErrInvalid) {
		t.Errorf("bad binding = %v, want ErrInvalid", err)
	}
}

func TestLocalVLANsExhausted(t *testing.T) {
	l := ovs.NewLocalVLANs()
	for i := 0; i < 4094; i++ {
		if _, err := l.Acquire(ovs.Binding{NetworkID: string(rune(0x10000 + i)), NetworkType: "vlan", PhysicalNetwork: "p", SegmentationID: 1 + i%4094}); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	if _, err := l.Acquire(ovs.Binding{NetworkID: "last", NetworkType: "flat", PhysicalNetwork: "p"}); !errors.Is(err, ovs.ErrExhausted) {
		t.Errorf("4095th = %v, want ErrExhausted", err)
	}
}

func TestLocalVLANsRestore(t *testing.T) {
	a := &ovs.Binding{NetworkID: "a", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 101}
	b := &ovs.Binding{NetworkID: "b", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: 102}
	l := ovs.NewLocalVLANs()
	err := l.Restore([]ovs.PortRecord{
		{Name: "p1", Tag: 3, Binding: a},
		{Name: "p2", Tag: 3, Binding: a},
		{Name: "p3", Tag: 4095},          // dead, no binding
		{Name: "p4", Tag: 5, Binding: a}, // contradicts p1
		{Name: "p5", Tag: 3, Binding: b}, // vlan taken
		{Name: "p6", Tag: 9, Binding: b},
	})
	if !errors.Is(err, ovs.ErrConflict) {
		t.Errorf("Restore err = %v, want ErrConflict for p4 and p5", err)
	}
	if v, ok := l.Lookup("a"); !ok || v != 3 {
		t.Errorf("a = %d %v, want 3", v, ok)
	}
	if v, ok := l.Lookup("b"); !ok || v != 9 {
		t.Errorf("b = %d %v, want 9", v, ok)
	}
	if n := l.Networks(); len(n) != 2 || n[0].LocalVLAN != 3 || n[1].LocalVLAN != 9 {
		t.Errorf("Networks = %+v", n)
	}
}
