package cloud_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
)

func TestFakePlacementConformance(t *testing.T) {
	p, _ := cloudtest.NewPlacementClient(t)
	cloudtest.RunPlacementSuite(t, p)
}

// TestPlacementFirstStartupMatchesNova replays the placement half of the
// recorded first start-up of nova-compute (http-a0): the same calls, with
// the same microversions and bodies, get the recorded answers.
func TestPlacementFirstStartupMatchesNova(t *testing.T) {
	recs := loadRecording(t, "http-a0-compute-first-startup.jsonl", "http://127.0.0.1:8778")
	if len(recs) != 9 {
		t.Fatalf("fixture has %d placement requests, want 9", len(recs))
	}
	rp := newReplay(t, recs)
	k := newKeystone(t, "placement")
	k.SetEndpoint("placement", rp.srv.URL)
	p, err := cloud.NewPlacement(session(t, k, "placement", "placement"), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const node = "393da306-601e-4ff1-acdb-da3bf004dee1"

	v, err := p.Version(ctx)
	if err != nil || v.MaxVersion != "1.39" {
		t.Fatalf("Version: %+v %v", v, err)
	}
	prov, err := p.EnsureProvider(ctx, node, "fake-1")
	if err != nil || prov.Generation != 0 || prov.Name != "fake-1" {
		t.Fatalf("EnsureProvider: %+v %v", prov, err)
	}
	if pa, err := p.ProviderAllocations(ctx, node); err != nil || len(pa.Allocations) != 0 {
		t.Fatalf("ProviderAllocations: %+v %v", pa, err)
	}
	inv := cloud.Inventories{
		"VCPU":      {Total: 1000, MinUnit: 1, MaxUnit: 1000, StepSize: 1, AllocationRatio: 16.0, Reserved: 0},
		"MEMORY_MB": {Total: 800000, MinUnit: 1, MaxUnit: 800000, StepSize: 1, AllocationRatio: 1.5, Reserved: 512},
		"DISK_GB":   {Total: 600000, MinUnit: 1, MaxUnit: 600000, StepSize: 1, AllocationRatio: 1.0, Reserved: 0},
	}
	gen, err := p.SetInventories(ctx, node, prov.Generation, inv)
	if err != nil || gen != 1 {
		t.Fatalf("SetInventories: %d %v", gen, err)
	}
	traits := []string{"COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_NODE", "COMPUTE_DEVICE_TAGGING", "COMPUTE_NET_ATTACH_INTERFACE",
		"COMPUTE_ACCELERATORS", "COMPUTE_VOLUME_EXTEND", "COMPUTE_VOLUME_ATTACH_WITH_TAG", "COMPUTE_VOLUME_MULTI_ATTACH",
		"COMPUTE_TRUSTED_CERTS", "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG"}
	have, err := p.ExistingTraits(ctx, traits)
	if err != nil || len(have) != len(traits) {
		t.Fatalf("ExistingTraits: %v %v", have, err)
	}
	if gen, err = p.SetProviderTraits(ctx, node, gen, traits); err != nil || gen != 2 {
		t.Fatalf("SetProviderTraits: %d %v", gen, err)
	}
	for range 2 {
		if pa, err := p.ProviderAllocations(ctx, node); err != nil || pa.Generation != 2 {
			t.Fatalf("ProviderAllocations: %+v %v", pa, err)
		}
	}
	for i, used := range rp.used {
		if !used {
			t.Errorf("recorded request not made: %s %s", recs[i].Method, recs[i].URL)
		}
	}
}

// TestConsumerAllocationsFromServerCreate reads the allocations recorded
// during a server create (http-c) and the heartbeat window (http-b).
func TestConsumerAllocationsFromServerCreate(t *testing.T) {
	recs := loadRecording(t, "http-c-server-create.jsonl", "http://127.0.0.1:8778")
	recs = append(recs, loadRecording(t, "http-b-heartbeat-60s.jsonl", "http://127.0.0.1:8778")...)
	rp := newReplay(t, recs)
	k := newKeystone(t, "placement")
	k.SetEndpoint("placement", rp.srv.URL)
	p, err := cloud.NewPlacement(session(t, k, "placement", "placement"), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const inst, node = "dfecc2dd-3e37-488e-82be-6c5fd2f1613a", "b46a49ab-0efe-4e73-ab47-941b9c84a054"
	ca, err := p.ConsumerAllocations(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if ca.ConsumerGeneration == nil || *ca.ConsumerGeneration != 1 || ca.ProviderGenerations[node] != 3 ||
		ca.Allocations[node]["MEMORY_MB"] != 64 || ca.Allocations[node]["VCPU"] != 1 || ca.ProjectID != "b811a370f567435986433f0defd38e90" {
		t.Errorf("ConsumerAllocations = %+v", ca)
	}
	pa, err := p.ProviderAllocations(ctx, node)
	if err != nil || pa.Generation != 3 || pa.Allocations[inst]["DISK_GB"] != 1 {
		t.Errorf("ProviderAllocations = %+v %v", pa, err)
	}
}

func TestPlacementErrorsAreSentinels(t *testing.T) {
	p, fp := cloudtest.NewPlacementClient(t)
	ctx := context.Background()
	const u = "6f1b0f8c-5f6e-4b53-9d0e-2f4c8f8a1b11"
	if _, err := p.EnsureProvider(ctx, u, "n1"); err != nil {
		t.Fatal(err)
	}
	fp.BumpGeneration(u)
	_, err := p.SetInventories(ctx, u, 0, cloud.Inventories{"VCPU": {Total: 1, MaxUnit: 1, MinUnit: 1, StepSize: 1, AllocationRatio: 1}})
	var he *cloud.HTTPError
	if !errors.Is(err, cloud.ErrGenerationConflict) || !errors.As(err, &he) || he.Status != 409 || he.Code != "placement.concurrent_update" {
		t.Fatalf("err = %v", err)
	}
	// Four conflicts in a row: UpdateInventories gives up with the sentinel.
	calls := 0
	_, err = p.UpdateInventories(ctx, u, func(cloud.Inventories) cloud.Inventories {
		calls++
		fp.BumpGeneration(u)
		return cloud.Inventories{"VCPU": {Total: 2, MaxUnit: 2, MinUnit: 1, StepSize: 1, AllocationRatio: 1}}
	})
	if !errors.Is(err, cloud.ErrGenerationConflict) || calls != 4 {
		t.Errorf("after %d attempts: %v", calls, err)
	}
	// nova's microversions reach the wire.
	var mvs []string
	for _, r := range fp.Requests() {
		if r.Method == "PUT" {
			mvs = append(mvs, r.Microversion)
		}
	}
	if len(mvs) == 0 || slices.IndexFunc(mvs, func(s string) bool { return s != "placement 1.26" }) >= 0 {
		t.Errorf("PUT inventories microversions %v, want placement 1.26", mvs)
	}
}
