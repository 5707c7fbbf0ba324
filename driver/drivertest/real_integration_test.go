//go:build integration

package drivertest

import (
	"context"
	"testing"

	"github.com/moby/moby/client"
)

// TestRealDockerConformance runs the same suite against the local dockerd.
func TestRealDockerConformance(t *testing.T) {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	if _, err := cli.Ping(context.Background(), client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("dockerd not reachable at its default socket (is docker running?): %v", err)
	}
	Conformance(t, cli)
}
