//go:build integration

package cloud_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// aioConfig loads the agent configuration the all-in-one wrote.
func aioConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := os.Getenv("NCA_AIO_DIR")
	if dir == "" {
		dir = "/var/lib/nca-aio"
	}
	path := filepath.Join(dir, "agent.conf")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("all-in-one agent config %s missing (run tests/aio/up.sh): %v", path, err)
	}
	cfg, err := config.Load([]string{path})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return cfg
}

// aioSession authenticates one auth section of the all-in-one's agent.conf.
func aioSession(t *testing.T, a config.KeystoneAuth) *cloud.Session {
	t.Helper()
	sess, err := cloud.NewSession(context.Background(), a)
	if err != nil {
		t.Fatalf("keystone (is the all-in-one up?): %v", err)
	}
	return sess
}

// TestRealPlacementConformance runs the suite the fake passes against the
// all-in-one placement at 127.0.0.1:8778.
func TestRealPlacementConformance(t *testing.T) {
	cfg := aioConfig(t)
	p, err := cloud.NewPlacement(aioSession(t, cfg.Placement.KeystoneAuth), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("placement at %s", p.Endpoint())
	cloudtest.RunPlacementSuite(t, p)
}

// TestRealSessionsForEverySection authenticates every auth section of the
// all-in-one's agent.conf and resolves its endpoint.
func TestRealSessionsForEverySection(t *testing.T) {
	cfg := aioConfig(t)
	ctx := context.Background()
	for name, a := range map[string]config.KeystoneAuth{"placement": cfg.Placement.KeystoneAuth,
		"neutron": cfg.Neutron.KeystoneAuth, "glance": cfg.Glance.KeystoneAuth, "service_user": cfg.ServiceUser.KeystoneAuth} {
		sess, err := cloud.NewSession(ctx, a)
		if err != nil {
			t.Errorf("[%s]: %v", name, err)
			continue
		}
		tok, err := sess.Token(ctx)
		if err != nil || tok == "" || sess.ExpiresAt().IsZero() {
			t.Errorf("[%s] token %q expires %v: %v", name, tok, sess.ExpiresAt(), err)
		}
		if name == "service_user" {
			continue
		}
		if ep, err := sess.Endpoint(sess.ServiceType()); err != nil {
			t.Errorf("[%s] endpoint: %v", name, err)
		} else {
			t.Logf("[%s] %s endpoint %s", name, sess.ServiceType(), ep)
		}
	}
}

// TestRealNeutronAndGlanceReads makes read-only calls with the service
// credentials: what the agent does at start-up.
func TestRealNeutronAndGlanceReads(t *testing.T) {
	cfg := aioConfig(t)
	ctx := context.Background()
	nt, err := cloud.NewNeutron(aioSession(t, cfg.Neutron.KeystoneAuth), nil, "", cfg.Neutron.HTTPRetries)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := nt.Extensions(ctx)
	if err != nil || len(exts) == 0 {
		t.Fatalf("neutron extensions: %d, %v", len(exts), err)
	}
	if _, err := nt.ListPorts(ctx, cloud.PortFilter{HostID: cfg.Default.Host, Fields: []string{"id", "binding:host_id"}}); err != nil {
		t.Errorf("list ports: %v", err)
	}
	g, err := cloud.NewGlance(aioSession(t, cfg.Glance.KeystoneAuth), nil, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.GetImage(ctx, "00000000-0000-0000-0000-000000000000"); err == nil {
		t.Error("GetImage of a made-up id succeeded")
	} else if !isNotFoundErr(err) {
		t.Errorf("GetImage of a made-up id: %v, want ErrNotFound", err)
	}
}
