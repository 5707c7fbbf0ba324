package ovs_test

import (
	"testing"

	"github.com/nova-container-agent/nova-container-agent/ovs/ovstest"
)

func TestConformanceInMemory(t *testing.T) {
	srv := ovstest.NewServer(t)
	ovstest.RunConformance(t, srv.Endpoint(), "netdev")
}
