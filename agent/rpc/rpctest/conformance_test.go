package rpctest_test

import (
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc/rpctest"
)

func TestConformanceFake(t *testing.T) {
	rpctest.RunConformance(t, rpctest.FakeHarness())
}
