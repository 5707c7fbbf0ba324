package cloudtest

import (
	"context"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// NewPlacementClient starts a fake keystone and a fake placement behind it and returns the
// agent's real placement client, authenticated as the placement service user, with the fake
// for inspection. Both servers close when the test ends.
func NewPlacementClient(t testing.TB) (*cloud.Placement, *Placement) {
	t.Helper()
	k := NewKeystone()
	t.Cleanup(k.Server.Close)
	k.AddUser("placement", "placement-pw")
	fp := NewPlacement()
	t.Cleanup(fp.Server.Close)
	fp.Auth = k.Valid
	k.SetEndpoint("placement", fp.Server.URL)
	sess, err := cloud.NewSession(context.Background(), config.KeystoneAuth{AuthType: "password", AuthURL: k.AuthURL(),
		Username: "placement", Password: "placement-pw", ProjectName: "service", UserDomainName: "Default",
		ProjectDomainName: "Default", RegionName: "RegionOne", ServiceType: "placement", ValidInterfaces: []string{"internal", "public"}})
	if err != nil {
		t.Fatalf("placement session: %v", err)
	}
	p, err := cloud.NewPlacement(sess, "")
	if err != nil {
		t.Fatal(err)
	}
	return p, fp
}
