package cloudtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

// RunPlacementSuite is the conformance suite every placement the agent
// talks to must pass: the fake above and the real all-in-one placement.
// It creates providers and consumers with random uuids and names prefixed
// "nca-conformance-" and deletes them at the end. Concurrent writers are
// simulated with a second write through the same client, so the suite needs
// nothing but the API.
func RunPlacementSuite(t *testing.T, p *cloud.Placement) {
	ctx := context.Background()
	rpUUID := uuid.NewString()
	name := "nca-conformance-" + rpUUID[:8]
	consumerA, consumerB := uuid.NewString(), uuid.NewString()
	project, user := strings.ReplaceAll(uuid.NewString(), "-", ""), strings.ReplaceAll(uuid.NewString(), "-", "")
	t.Cleanup(func() {
		_, _ = p.DeleteConsumerAllocations(ctx, consumerA)
		_, _ = p.DeleteConsumerAllocations(ctx, consumerB)
		_ = p.DeleteProvider(ctx, rpUUID)
	})

	if v, err := p.Version(ctx); err != nil || v.MaxVersion == "" {
		t.Fatalf("Version: %+v, %v", v, err)
	}
	if _, err := p.Provider(ctx, rpUUID); !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("Provider of unknown uuid: %v, want ErrNotFound", err)
	}
	if tree, err := p.ProvidersInTree(ctx, rpUUID); err != nil || len(tree) != 0 {
		t.Fatalf("ProvidersInTree of unknown uuid: %v, %v", tree, err)
	}

	// Providers.
	rp, err := p.EnsureProvider(ctx, rpUUID, name)
	if err != nil {
		t.Fatalf("EnsureProvider (create): %v", err)
	}
	if rp.UUID != rpUUID || rp.Name != name || rp.Generation != 0 {
		t.Fatalf("created provider %+v", rp)
	}
	again, err := p.EnsureProvider(ctx, rpUUID, name)
	if err != nil || again.UUID != rpUUID {
		t.Fatalf("EnsureProvider (existing): %+v, %v", again, err)
	}
	if _, err := p.CreateProvider(ctx, rpUUID, name+"-other"); !errors.Is(err, cloud.ErrConflict) {
		t.Errorf("CreateProvider with an existing uuid: %v, want ErrConflict", err)
	}
	if _, err := p.EnsureProvider(ctx, uuid.NewString(), name); !errors.Is(err, cloud.ErrConflict) {
		t.Errorf("EnsureProvider with a taken name: %v, want ErrConflict", err)
	}

	// Inventories with generations.
	inv := cloud.Inventories{
		"VCPU":      {Total: 4, Reserved: 0, MinUnit: 1, MaxUnit: 4, StepSize: 1, AllocationRatio: 16},
		"MEMORY_MB": {Total: 4096, Reserved: 512, MinUnit: 1, MaxUnit: 4096, StepSize: 1, AllocationRatio: 1.5},
		"DISK_GB":   {Total: 100, Reserved: 0, MinUnit: 1, MaxUnit: 100, StepSize: 1, AllocationRatio: 1},
	}
	gen, err := p.SetInventories(ctx, rpUUID, 0, inv)
	if err != nil || gen != 1 {
		t.Fatalf("SetInventories at 0: gen %d, %v", gen, err)
	}
	if _, err := p.SetInventories(ctx, rpUUID, 0, inv); !errors.Is(err, cloud.ErrGenerationConflict) {
		t.Fatalf("SetInventories with a stale generation: %v, want ErrGenerationConflict", err)
	}
	got, g2, err := p.Inventories(ctx, rpUUID)
	if err != nil || g2 != 1 || len(got) != 3 || got["MEMORY_MB"] != inv["MEMORY_MB"] {
		t.Fatalf("Inventories: %+v gen %d, %v", got, g2, err)
	}
	if g, err := p.EnsureInventories(ctx, rpUUID, inv); err != nil || g != 1 {
		t.Errorf("EnsureInventories with no change must not write: gen %d, %v", g, err)
	}

	// A concurrent writer between our read and our write: the first PUT
	// conflicts and UpdateInventories must retry with a fresh read.
	calls := 0
	inv2 := cloud.Inventories{}
	for k, v := range inv {
		inv2[k] = v
	}
	vcpu := inv2["VCPU"]
	vcpu.Total, vcpu.MaxUnit = 8, 8
	inv2["VCPU"] = vcpu
	gen, err = p.UpdateInventories(ctx, rpUUID, func(cur cloud.Inventories) cloud.Inventories {
		calls++
		if calls == 1 {
			// Another writer changes the provider (a trait update bumps the generation).
			if _, err := p.UpdateProviderTraits(ctx, rpUUID, func(c []string) []string {
				return append(c, "COMPUTE_NODE")
			}); err != nil {
				t.Errorf("concurrent trait write: %v", err)
			}
		}
		return inv2
	})
	if err != nil || calls != 2 {
		t.Fatalf("UpdateInventories under a concurrent write: gen %d, calls %d, %v", gen, calls, err)
	}
	if got, _, _ := p.Inventories(ctx, rpUUID); got["VCPU"].Total != 8 {
		t.Fatalf("inventory after retry: %+v", got["VCPU"])
	}

	// Traits, including a custom trait that does not exist yet.
	custom := "CUSTOM_NCA_CONFORMANCE_" + strings.ToUpper(strings.ReplaceAll(rpUUID[:8], "-", ""))
	gen, err = p.UpdateProviderTraits(ctx, rpUUID, func(c []string) []string {
		return append(c, custom, "COMPUTE_NET_ATTACH_INTERFACE")
	})
	if err != nil {
		t.Fatalf("UpdateProviderTraits: %v", err)
	}
	traits, tg, err := p.ProviderTraits(ctx, rpUUID)
	if err != nil || tg != gen {
		t.Fatalf("ProviderTraits: gen %d want %d, %v", tg, gen, err)
	}
	for _, want := range []string{custom, "COMPUTE_NODE", "COMPUTE_NET_ATTACH_INTERFACE"} {
		if !slices.Contains(traits, want) {
			t.Errorf("trait %s missing from %v", want, traits)
		}
	}
	if have, err := p.ExistingTraits(ctx, []string{custom, "CUSTOM_NCA_SURELY_MISSING_TRAIT"}); err != nil ||
		!slices.Equal(have, []string{custom}) {
		t.Errorf("ExistingTraits: %v, %v", have, err)
	}
	if _, err := p.SetProviderTraits(ctx, rpUUID, gen-1, traits); !errors.Is(err, cloud.ErrGenerationConflict) {
		t.Errorf("SetProviderTraits with a stale generation: %v", err)
	}
	if _, err := p.UpdateProviderTraits(ctx, rpUUID, func(c []string) []string {
		return append(c, "HW_NCA_NOT_A_STANDARD_TRAIT")
	}); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("unknown standard trait: %v, want ErrNotFound", err)
	}
	if aggs, _, err := p.ProviderAggregates(ctx, rpUUID); err != nil || len(aggs) != 0 {
		t.Errorf("ProviderAggregates: %v, %v", aggs, err)
	}

	// Allocations.
	if ca, err := p.ConsumerAllocations(ctx, consumerA); err != nil || len(ca.Allocations) != 0 || ca.ConsumerGeneration != nil {
		t.Fatalf("ConsumerAllocations of a new consumer: %+v, %v", ca, err)
	}
	req := cloud.ConsumerAllocations{Allocations: map[string]map[string]int{rpUUID: {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}},
		ProjectID: project, UserID: user}
	if err := p.PutConsumerAllocations(ctx, consumerA, req); err != nil {
		t.Fatalf("PutConsumerAllocations: %v", err)
	}
	if err := p.PutConsumerAllocations(ctx, consumerA, req); !errors.Is(err, cloud.ErrGenerationConflict) {
		t.Errorf("PutConsumerAllocations with a null generation for an existing consumer: %v", err)
	}
	ca, err := p.ConsumerAllocations(ctx, consumerA)
	if err != nil || ca.ConsumerGeneration == nil || ca.Allocations[rpUUID]["MEMORY_MB"] != 64 || ca.ProjectID != project {
		t.Fatalf("ConsumerAllocations: %+v, %v", ca, err)
	}
	// Over capacity: (4096-512)*1.5 = 5376 MB.
	over := cloud.ConsumerAllocations{Allocations: map[string]map[string]int{rpUUID: {"MEMORY_MB": 4096}},
		ProjectID: project, UserID: user}
	if err := p.PutConsumerAllocations(ctx, consumerB, over); err != nil {
		t.Fatalf("allocation within capacity: %v", err)
	}
	over.Allocations[rpUUID]["MEMORY_MB"] = 2048
	if err := p.PutConsumerAllocations(ctx, uuid.NewString(), over); !errors.Is(err, cloud.ErrConflict) {
		t.Errorf("allocation beyond capacity: %v, want ErrConflict", err)
	}
	// Moving B's 4096 MB to a new consumer C: as two PUTs the first would exceed capacity
	// (8192 > 5376); as one POST, as nova moves an instance's allocations to its migration,
	// it fits. A stale generation for either consumer changes nothing.
	consumerC := uuid.NewString()
	move := func(from, to string) map[string]cloud.ConsumerAllocations {
		src, err := p.ConsumerAllocations(ctx, from)
		if err != nil {
			t.Fatalf("ConsumerAllocations %s: %v", from, err)
		}
		dst, err := p.ConsumerAllocations(ctx, to)
		if err != nil {
			t.Fatalf("ConsumerAllocations %s: %v", to, err)
		}
		return map[string]cloud.ConsumerAllocations{
			from: {Allocations: map[string]map[string]int{}, ConsumerGeneration: src.ConsumerGeneration, ProjectID: project, UserID: user},
			to:   {Allocations: src.Allocations, ConsumerGeneration: dst.ConsumerGeneration, ProjectID: project, UserID: user},
		}
	}
	stale := move(consumerB, consumerC)
	wrong := 99
	bad := stale[consumerB]
	bad.ConsumerGeneration = &wrong
	stale[consumerB] = bad
	if err := p.PostAllocations(ctx, stale); !errors.Is(err, cloud.ErrGenerationConflict) {
		t.Errorf("PostAllocations with a stale generation: %v, want ErrGenerationConflict", err)
	}
	if c, _ := p.ConsumerAllocations(ctx, consumerC); c == nil || len(c.Allocations) != 0 {
		t.Errorf("a refused PostAllocations wrote consumer C: %+v", c)
	}
	if err := p.PostAllocations(ctx, move(consumerB, consumerC)); err != nil {
		t.Fatalf("PostAllocations moving B to C: %v", err)
	}
	if c, err := p.ConsumerAllocations(ctx, consumerC); err != nil || c.Allocations[rpUUID]["MEMORY_MB"] != 4096 {
		t.Errorf("consumer C after the move: %+v, %v", c, err)
	}
	if b, err := p.ConsumerAllocations(ctx, consumerB); err != nil || len(b.Allocations) != 0 {
		t.Errorf("consumer B after the move: %+v, %v", b, err)
	}
	if err := p.PostAllocations(ctx, move(consumerC, consumerB)); err != nil {
		t.Fatalf("PostAllocations moving C back to B: %v", err)
	}
	pa, err := p.ProviderAllocations(ctx, rpUUID)
	if err != nil || len(pa.Allocations) != 2 || pa.Allocations[consumerA]["VCPU"] != 1 {
		t.Fatalf("ProviderAllocations: %+v, %v", pa, err)
	}
	// Removing an allocated class is refused.
	noMem := cloud.Inventories{"VCPU": inv2["VCPU"], "DISK_GB": inv2["DISK_GB"]}
	if _, err := p.EnsureInventories(ctx, rpUUID, noMem); !errors.Is(err, cloud.ErrInventoryInUse) {
		t.Errorf("removing allocated MEMORY_MB: %v, want ErrInventoryInUse", err)
	}
	if err := p.DeleteProvider(ctx, rpUUID); !errors.Is(err, cloud.ErrConflict) {
		t.Errorf("deleting a provider with allocations: %v, want ErrConflict", err)
	}

	// Non-forced delete: empty allocations at the current consumer generation.
	ca, _ = p.ConsumerAllocations(ctx, consumerB)
	if err := p.PutConsumerAllocations(ctx, consumerB, cloud.ConsumerAllocations{Allocations: map[string]map[string]int{},
		ConsumerGeneration: ca.ConsumerGeneration, ProjectID: project, UserID: user}); err != nil {
		t.Errorf("emptying consumer B: %v", err)
	}
	// Forced delete.
	if ok, err := p.DeleteConsumerAllocations(ctx, consumerA); err != nil || !ok {
		t.Errorf("DeleteConsumerAllocations: %v, %v", ok, err)
	}
	if ok, err := p.DeleteConsumerAllocations(ctx, consumerA); err != nil || ok {
		t.Errorf("DeleteConsumerAllocations of a consumer without allocations: %v, %v (want false, nil)", ok, err)
	}
	if pa, err := p.ProviderAllocations(ctx, rpUUID); err != nil || len(pa.Allocations) != 0 {
		t.Errorf("ProviderAllocations after deletes: %+v, %v", pa, err)
	}
	if _, err := p.EnsureInventories(ctx, rpUUID, noMem); err != nil {
		t.Errorf("removing MEMORY_MB once unallocated: %v", err)
	}
	if err := p.DeleteProvider(ctx, rpUUID); err != nil {
		t.Errorf("DeleteProvider: %v", err)
	}
	if _, err := p.Provider(ctx, rpUUID); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Provider after delete: %v", err)
	}
}
