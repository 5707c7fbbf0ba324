//go:build integration

package flows_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

func TestFlowConformanceRealOVS(t *testing.T) {
	ep := os.Getenv("NCA_OVSDB")
	if ep == "" {
		ep = "unix:/var/run/openvswitch/db.sock"
	}
	c, intBr, _ := ovstest.Dial(t, ep, "netdev", "flows-it")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.EnsureBridges(ctx); err != nil {
		t.Fatalf("real OVS at %s: %v", ep, err)
	}
	run := flows.ExecRunner{}
	ovstest.RunFlowConformance(t, ovstest.FlowTarget{Runner: run, Bridge: intBr,
		InstallForeign: func(t *testing.T, cookie uint64, f flows.Flow) {
			if _, err := run.Run(ctx, nil, "ovs-ofctl", "-O", "OpenFlow13", "add-flow", intBr, f.String(cookie)); err != nil {
				t.Fatal(err)
			}
		}})
}
