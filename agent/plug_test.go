package agent

import (
	"context"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/driver/vif"
	"github.com/nova-container-agent/nova-container-agent/ovs"
)

// bridgeModel models what matters of ovs-vswitchd here: a row added while a device exists
// opens that device; a device recreated under an existing row stays unread until the row is
// deleted and added again (AddPort is may-exist, so re-adding alone changes nothing).
type bridgeModel struct {
	device map[string]int // host-end name → device generation
	opened map[string]int // bridge row → generation it reads from
	lost   bool           // the next Plug finds the peer gone and recreates the pair
}

func (b *bridgeModel) AddPort(_ context.Context, s ovs.PortSpec) error {
	if _, ok := b.opened[s.Name]; !ok {
		b.opened[s.Name] = b.device[s.Name]
	}
	return nil
}

func (b *bridgeModel) DeletePort(_ context.Context, name string) error {
	delete(b.opened, name)
	return nil
}

func (b *bridgeModel) Announce(context.Context, string, vif.Plan) error { return nil }

func (b *bridgeModel) Plug(_ context.Context, _ string, plan vif.Plan) (vif.Outcome, error) {
	gen, ok := b.device[plan.HostName()]
	switch {
	case !ok:
		b.device[plan.HostName()] = 1
		return vif.Created, nil
	case b.lost:
		b.device[plan.HostName()] = gen + 1
		b.lost = false
		return vif.Recreated, nil
	}
	return vif.Unchanged, nil
}

func (b *bridgeModel) Unplug(context.Context, string) error { return nil }

func TestPlugReopensRecreatedDevice(t *testing.T) {
	b := &bridgeModel{device: map[string]int{}, opened: map[string]int{}}
	p := &Plugger{OVS: b, Plumber: b}
	v := VIF{ID: "cfd6988a-803e-48be-9112-3fa7889792db", Address: "fa:16:3e:b5:08:a3", Type: "ovs"}
	plan, err := VIFPlan(v, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := plan.HostName()
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		if got, want := b.opened[name], b.device[name]; got != want {
			t.Errorf("%s: the bridge reads device generation %d, the live device is %d", step, got, want)
		}
	}
	if err := p.Plug(ctx, "uuid", "/proc/1/ns/net", []VIF{v}); err != nil {
		t.Fatal(err)
	}
	check("first plug")
	if err := p.Plug(ctx, "uuid", "/proc/1/ns/net", []VIF{v}); err != nil {
		t.Fatal(err)
	}
	check("idempotent plug")
	b.lost = true // the namespace died with its veth; the bridge row stayed
	if err := p.Plug(ctx, "uuid", "/proc/2/ns/net", []VIF{v}); err != nil {
		t.Fatal(err)
	}
	check("plug after the device was recreated")
}
