package cloud_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
)

func TestSessionCachesRenewsAndReauthenticates(t *testing.T) {
	k := newKeystone(t, "placement")
	fp := cloudtest.NewPlacement()
	t.Cleanup(fp.Server.Close)
	fp.Auth = k.Valid
	k.SetEndpoint("placement", fp.Server.URL)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	k.SetClock(clock)
	k.SetTTL(time.Hour)
	sess := session(t, k, "placement", "placement", cloud.WithClock(clock))
	pl, err := cloud.NewPlacement(sess, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if _, err := pl.ProvidersInTree(ctx, "6f1b0f8c-5f6e-4b53-9d0e-2f4c8f8a1b11"); err != nil {
			t.Fatal(err)
		}
	}
	if n := k.Issued(); n != 1 {
		t.Fatalf("5 calls issued %d tokens, want 1 (cached)", n)
	}
	if exp := sess.ExpiresAt(); exp.Sub(now) < 59*time.Minute {
		t.Fatalf("ExpiresAt = %v", exp)
	}

	// 119 s before expiry the token is renewed before use.
	mu.Lock()
	now = now.Add(time.Hour - 119*time.Second)
	mu.Unlock()
	if _, err := pl.ProvidersInTree(ctx, "6f1b0f8c-5f6e-4b53-9d0e-2f4c8f8a1b11"); err != nil {
		t.Fatal(err)
	}
	if n := k.Issued(); n != 2 {
		t.Fatalf("near expiry: %d tokens issued, want 2", n)
	}

	// Revoked behind our back: the 401 triggers one re-authentication.
	k.RevokeAll()
	if _, err := pl.ProvidersInTree(ctx, "6f1b0f8c-5f6e-4b53-9d0e-2f4c8f8a1b11"); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if n := k.Issued(); n != 3 {
		t.Fatalf("after revocation: %d tokens issued, want 3", n)
	}

	// The password request carries the configured user, project and domains.
	req := k.AuthRequests()[0]
	auth := req["auth"].(map[string]any)
	scope := auth["scope"].(map[string]any)["project"].(map[string]any)
	user := auth["identity"].(map[string]any)["password"].(map[string]any)["user"].(map[string]any)
	if scope["name"] != "service" || scope["domain"].(map[string]any)["name"] != "Default" ||
		user["name"] != "placement" || user["domain"].(map[string]any)["name"] != "Default" {
		t.Errorf("auth request %v", req)
	}
}

func TestSessionBadPasswordIsUnauthorized(t *testing.T) {
	k := newKeystone(t, "placement")
	a := authFor(k, "placement")
	a.Password = "wrong"
	_, err := cloud.NewSession(context.Background(), a)
	if !errors.Is(err, cloud.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
}

func TestEndpointSelection(t *testing.T) {
	k := newKeystone(t, "neutron")
	k.SetEndpoint("network", "http://192.0.2.1:9696")
	s := session(t, k, "neutron", "network")
	if ep, err := s.Endpoint("network"); err != nil || ep != "http://192.0.2.1:9696/" {
		t.Errorf("Endpoint = %q, %v", ep, err)
	}
	if _, err := s.Endpoint("volumev3"); !errors.Is(err, cloud.ErrNoEndpoint) {
		t.Errorf("missing service: %v", err)
	}
	a := authFor(k, "neutron")
	a.RegionName = "Elsewhere"
	s2, err := cloud.NewSession(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Endpoint("network"); !errors.Is(err, cloud.ErrNoEndpoint) {
		t.Errorf("wrong region: %v", err)
	}
	a.EndpointOverride = "http://198.51.100.9:9696"
	s3, _ := cloud.NewSession(context.Background(), a)
	if ep, err := s3.Endpoint("network"); err != nil || ep != "http://198.51.100.9:9696/" {
		t.Errorf("override: %q %v", ep, err)
	}
}
