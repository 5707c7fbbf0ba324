package flows_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

func TestApplyArgvAndStdin(t *testing.T) {
	ctx := context.Background()
	fake := ovstest.NewFakeOFCtl("br-int")
	// Someone else's flow. (One with exactly the match of ours would be replaced by our add:
	// OFPFC_ADD overwrites an identical match whatever its cookie, which is why the flows are
	// not programmed at all in compatibility mode.)
	fake.Install("br-int", 0x77, flows.Flow{Table: 0, Priority: 1, Actions: "NORMAL"})
	a := flows.NewApplier(fake, 0xabc)
	if _, err := a.Apply(ctx, "br-int", []flows.Flow{
		{Table: 0, Priority: 0, Actions: "goto_table:59"},
		{Table: 60, Priority: 3, Actions: "NORMAL"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, "br-int", []flows.Flow{
		{Table: 60, Priority: 3, Actions: "NORMAL"},
		{Table: 0, Priority: 2, Match: "in_port=3", Actions: "drop"},
	}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	want := []ovstest.Call{
		{Argv: []string{"ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "br-int", "cookie=0xabc/-1"}},
		{Argv: []string{"ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", "br-int", "-"},
			Stdin: "add cookie=0xabc,table=0,priority=0,actions=goto_table:59\nadd cookie=0xabc,table=60,priority=3,actions=NORMAL\n"},
		{Argv: []string{"ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "br-int", "cookie=0xabc/-1"}},
		{Argv: []string{"ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", "br-int", "-"},
			Stdin: "delete_strict cookie=0xabc/-1,table=0,priority=0\nadd cookie=0xabc,table=0,priority=2,in_port=3,actions=drop\n"},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v", calls)
	}
	for i := range want {
		if !slices.Equal(calls[i].Argv, want[i].Argv) || calls[i].Stdin != want[i].Stdin {
			t.Errorf("call %d = %q stdin %q\nwant     %q stdin %q", i, calls[i].Argv, calls[i].Stdin, want[i].Argv, want[i].Stdin)
		}
	}
	for _, c := range calls {
		if slices.Contains(c.Argv, "replace-flows") || strings.Contains(c.Stdin, "0x77") {
			t.Errorf("call touches foreign flows: %+v", c)
		}
	}
	if got := fake.Flows("br-int")[0x77]; len(got) != 1 {
		t.Errorf("foreign flow lost: %+v", got)
	}
}

func TestApplyZeroCookieRefused(t *testing.T) {
	a := flows.NewApplier(ovstest.NewFakeOFCtl("br-int"), 0)
	if _, err := a.Apply(context.Background(), "br-int", nil); err == nil {
		t.Fatal("zero cookie accepted")
	}
}

func TestFlowConformanceFake(t *testing.T) {
	fake := ovstest.NewFakeOFCtl("br-x")
	ovstest.RunFlowConformance(t, ovstest.FlowTarget{Runner: fake, Bridge: "br-x",
		InstallForeign: func(t *testing.T, c uint64, f flows.Flow) { fake.Install("br-x", c, f) }})
}
