//go:build integration

package cloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
)

// TestRealNeutronPortConformance runs the suite the fake passes against the all-in-one's
// neutron-server, on a VLAN network of its own (neutron picks the VLAN) that it deletes after.
func TestRealNeutronPortConformance(t *testing.T) {
	cfg := aioConfig(t)
	ctx := context.Background()
	sess := aioSession(t, cfg.Neutron.KeystoneAuth)
	n, err := cloud.NewNeutron(sess, nil, "", cfg.Neutron.HTTPRetries)
	if err != nil {
		t.Fatal(err)
	}
	// The agent has no reason to create networks, so the test does it by hand.
	raw := func(method, path string, body any) ([]byte, int) {
		t.Helper()
		tok, err := sess.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rd bytes.Buffer
		if body != nil {
			_ = json.NewEncoder(&rd).Encode(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, n.Endpoint()+path, &rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return out.Bytes(), resp.StatusCode
	}
	name := "nca-test-ports-" + uuid.NewString()[:8]
	out, status := raw(http.MethodPost, "networks", map[string]any{"network": map[string]any{"name": name,
		"provider:network_type": "vlan", "provider:physical_network": "physnet1"}})
	if status != http.StatusCreated {
		t.Fatalf("create network %s: HTTP %d %s", name, status, out)
	}
	var created struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Network.ID == "" {
		t.Fatalf("create network %s: %s (%v)", name, out, err)
	}
	netID := created.Network.ID
	// Registered first, so it runs after the suite's own port cleanup.
	t.Cleanup(func() {
		if out, status := raw(http.MethodDelete, fmt.Sprintf("networks/%s", netID), nil); status != http.StatusNoContent {
			t.Errorf("delete network %s: HTTP %d %s", netID, status, out)
		}
	})
	cloudtest.RunPortSuite(t, n, netID)
}
