//go:build integration

package ovs_test

import (
	"os"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

// ovsdbEndpoint is the real ovsdb-server (NCA_OVSDB, default the Debian socket).
func ovsdbEndpoint(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("NCA_OVSDB")
	if ep == "" {
		ep = "unix:/var/run/openvswitch/db.sock"
	}
	return ep
}

func TestConformanceRealOVS(t *testing.T) {
	ovstest.RunConformance(t, ovsdbEndpoint(t), "netdev")
}
