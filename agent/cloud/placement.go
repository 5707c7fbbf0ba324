package cloud

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Placement microversions, as nova's report client uses them
// (nova/scheduler/client/report.py).
const (
	mvNestedProviders     = "placement 1.14" // GET /resource_providers?in_tree
	mvTraits              = "placement 1.6"
	mvResourceClasses     = "placement 1.7"
	mvAggregateGeneration = "placement 1.19"
	mvPostRPReturnsBody   = "placement 1.20"
	mvReservedEqualTotal  = "placement 1.26" // PUT inventories
	mvConsumerGeneration  = "placement 1.28" // allocations with consumer generations
)

// maxGenerationRetries matches nova's four attempts at an update that races
// with another writer (ResourceTracker._update_to_placement's retry).
const maxGenerationRetries = 4

// ResourceProvider is a placement resource provider.
type ResourceProvider struct {
	UUID               string  `json:"uuid"`
	Name               string  `json:"name"`
	Generation         int     `json:"generation"`
	ParentProviderUUID *string `json:"parent_provider_uuid,omitempty"`
	RootProviderUUID   string  `json:"root_provider_uuid,omitempty"`
}

// Inventory is one resource class's inventory record.
type Inventory struct {
	Total           int     `json:"total"`
	Reserved        int     `json:"reserved"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	StepSize        int     `json:"step_size"`
	AllocationRatio float64 `json:"allocation_ratio"`
}

// Inventories maps resource class (VCPU, MEMORY_MB, DISK_GB, CUSTOM_*) to inventory.
type Inventories map[string]Inventory

// ProviderAllocations is GET /resource_providers/{uuid}/allocations:
// consumer uuid → resource class → amount.
type ProviderAllocations struct {
	Generation  int
	Allocations map[string]map[string]int
}

// ConsumerAllocations is one consumer's allocations (microversion 1.28).
type ConsumerAllocations struct {
	// Allocations maps resource provider uuid → resource class → amount.
	Allocations map[string]map[string]int
	// ProviderGenerations are the providers' generations as reported with
	// the allocations (read-only).
	ProviderGenerations map[string]int
	// ConsumerGeneration is nil for a consumer placement does not know.
	ConsumerGeneration *int
	ProjectID          string
	UserID             string
}

// Placement is a client of the placement API using the [placement] service
// credentials, with the microversions nova uses for each call.
type Placement struct {
	svc *service
}

// NewPlacement returns a placement client for sess (built from the
// [placement] section). endpointOverride, if not empty, replaces the catalog.
func NewPlacement(sess *Session, endpointOverride string) (*Placement, error) {
	svc, err := newService(sess, nil, endpointOverride, "", 0)
	if err != nil {
		return nil, fmt.Errorf("placement client: %w", err)
	}
	return &Placement{svc: svc}, nil
}

// Endpoint returns the base URL in use.
func (p *Placement) Endpoint() string { return p.svc.base }

// VersionInfo is placement's root version document.
type VersionInfo struct {
	MinVersion string `json:"min_version"`
	MaxVersion string `json:"max_version"`
	Status     string `json:"status"`
}

// Version reads the root version document (GET /), which needs no token.
func (p *Placement) Version(ctx context.Context) (*VersionInfo, error) {
	var out struct {
		Versions []VersionInfo `json:"versions"`
	}
	if _, err := p.svc.do(ctx, call{method: http.MethodGet, path: "", out: &out}); err != nil {
		return nil, fmt.Errorf("placement version: %w", err)
	}
	if len(out.Versions) == 0 {
		return nil, errors.New("placement version: empty version document")
	}
	return &out.Versions[0], nil
}

// ProvidersInTree lists the providers in the tree rooted at (or containing) uuid.
func (p *Placement) ProvidersInTree(ctx context.Context, uuid string) ([]ResourceProvider, error) {
	var out struct {
		ResourceProviders []ResourceProvider `json:"resource_providers"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvNestedProviders,
		path: "resource_providers?in_tree=" + url.QueryEscape(uuid), out: &out})
	if err != nil {
		return nil, fmt.Errorf("list providers in tree %s: %w", uuid, err)
	}
	return out.ResourceProviders, nil
}

// Provider reads one provider; ErrNotFound if it does not exist.
func (p *Placement) Provider(ctx context.Context, uuid string) (*ResourceProvider, error) {
	var out ResourceProvider
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvNestedProviders,
		path: "resource_providers/" + url.PathEscape(uuid), out: &out})
	if err != nil {
		return nil, fmt.Errorf("get provider %s: %w", uuid, err)
	}
	return &out, nil
}

// CreateProvider creates a root provider. A name already used by another
// provider gives ErrConflict; the uuid already existing gives ErrConflict too.
func (p *Placement) CreateProvider(ctx context.Context, uuid, name string) (*ResourceProvider, error) {
	var out ResourceProvider
	_, err := p.svc.do(ctx, call{method: http.MethodPost, microversion: mvPostRPReturnsBody,
		path: "resource_providers", body: map[string]string{"uuid": uuid, "name": name},
		out: &out, ok: []int{http.StatusOK}})
	if err != nil {
		return nil, fmt.Errorf("create provider %s (%s): %w", uuid, name, err)
	}
	return &out, nil
}

// EnsureProvider returns the provider uuid, creating it with name if
// missing, the way nova's _ensure_resource_provider does: GET in_tree, POST
// if empty, and on a 409 that is not a name conflict (somebody else created
// the same uuid concurrently) read it back.
func (p *Placement) EnsureProvider(ctx context.Context, uuid, name string) (*ResourceProvider, error) {
	tree, err := p.ProvidersInTree(ctx, uuid)
	if err != nil {
		return nil, err
	}
	for i := range tree {
		if tree[i].UUID == uuid {
			return &tree[i], nil
		}
	}
	rp, err := p.CreateProvider(ctx, uuid, name)
	if err == nil {
		return rp, nil
	}
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusConflict &&
		!strings.Contains(he.Detail, "Conflicting resource provider name") {
		return p.Provider(ctx, uuid)
	}
	return nil, err
}

// DeleteProvider deletes a provider (its allocations must be gone).
func (p *Placement) DeleteProvider(ctx context.Context, uuid string) error {
	_, err := p.svc.do(ctx, call{method: http.MethodDelete,
		path: "resource_providers/" + url.PathEscape(uuid), ok: []int{http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("delete provider %s: %w", uuid, err)
	}
	return nil
}

// Inventories reads a provider's inventories and generation.
func (p *Placement) Inventories(ctx context.Context, uuid string) (Inventories, int, error) {
	var out struct {
		Generation  int         `json:"resource_provider_generation"`
		Inventories Inventories `json:"inventories"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet,
		path: "resource_providers/" + url.PathEscape(uuid) + "/inventories", out: &out})
	if err != nil {
		return nil, 0, fmt.Errorf("get inventories of %s: %w", uuid, err)
	}
	if out.Inventories == nil {
		out.Inventories = Inventories{}
	}
	return out.Inventories, out.Generation, nil
}

// SetInventories replaces all inventories of a provider at generation gen
// and returns the new generation. ErrGenerationConflict if gen is stale,
// ErrInventoryInUse if allocations prevent removing or shrinking a class.
func (p *Placement) SetInventories(ctx context.Context, uuid string, gen int, inv Inventories) (int, error) {
	if inv == nil {
		inv = Inventories{}
	}
	var out struct {
		Generation int `json:"resource_provider_generation"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodPut, microversion: mvReservedEqualTotal,
		path: "resource_providers/" + url.PathEscape(uuid) + "/inventories",
		body: map[string]any{"resource_provider_generation": gen, "inventories": inv},
		out:  &out, ok: []int{http.StatusOK}})
	if err != nil {
		return 0, fmt.Errorf("set inventories of %s at generation %d: %w", uuid, gen, err)
	}
	return out.Generation, nil
}

// UpdateInventories reads the current inventories, lets build compute the
// desired set from them (so allocation ratios can follow nova's "keep what
// placement has" rule), and writes it if it differs, retrying on generation
// conflicts up to nova's four attempts. It returns the provider generation.
func (p *Placement) UpdateInventories(ctx context.Context, uuid string, build func(current Inventories) Inventories) (int, error) {
	var lastErr error
	for attempt := 0; attempt < maxGenerationRetries; attempt++ {
		cur, gen, err := p.Inventories(ctx, uuid)
		if err != nil {
			return 0, err
		}
		want := build(cur)
		if want == nil {
			want = Inventories{}
		}
		if maps.Equal(cur, want) {
			return gen, nil
		}
		newGen, err := p.SetInventories(ctx, uuid, gen, want)
		if err == nil {
			return newGen, nil
		}
		if !errors.Is(err, ErrGenerationConflict) {
			return 0, err
		}
		lastErr = err
	}
	return 0, fmt.Errorf("update inventories of %s: gave up after %d generation conflicts: %w",
		uuid, maxGenerationRetries, lastErr)
}

// EnsureInventories makes the provider's inventories equal inv, with
// generation-conflict retries.
func (p *Placement) EnsureInventories(ctx context.Context, uuid string, inv Inventories) (int, error) {
	return p.UpdateInventories(ctx, uuid, func(Inventories) Inventories { return inv })
}

// EnsureResourceClass creates a custom resource class if it does not exist
// (PUT is idempotent at 1.7).
func (p *Placement) EnsureResourceClass(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, "CUSTOM_") {
		return fmt.Errorf("ensure resource class %s: only CUSTOM_ classes can be created", name)
	}
	_, err := p.svc.do(ctx, call{method: http.MethodPut, microversion: mvResourceClasses,
		path: "resource_classes/" + url.PathEscape(name), ok: []int{http.StatusCreated, http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("ensure resource class %s: %w", name, err)
	}
	return nil
}

// ProviderTraits reads a provider's traits and generation.
func (p *Placement) ProviderTraits(ctx context.Context, uuid string) ([]string, int, error) {
	var out struct {
		Generation int      `json:"resource_provider_generation"`
		Traits     []string `json:"traits"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvTraits,
		path: "resource_providers/" + url.PathEscape(uuid) + "/traits", out: &out})
	if err != nil {
		return nil, 0, fmt.Errorf("get traits of %s: %w", uuid, err)
	}
	return out.Traits, out.Generation, nil
}

// SetProviderTraits replaces the provider's whole trait set at generation
// gen and returns the new generation.
func (p *Placement) SetProviderTraits(ctx context.Context, uuid string, gen int, traits []string) (int, error) {
	if traits == nil {
		traits = []string{}
	}
	var out struct {
		Generation int `json:"resource_provider_generation"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodPut, microversion: mvTraits,
		path: "resource_providers/" + url.PathEscape(uuid) + "/traits",
		body: map[string]any{"resource_provider_generation": gen, "traits": traits},
		out:  &out, ok: []int{http.StatusOK}})
	if err != nil {
		return 0, fmt.Errorf("set traits of %s at generation %d: %w", uuid, gen, err)
	}
	return out.Generation, nil
}

// ExistingTraits returns which of names placement knows (GET /traits?name=in:...).
func (p *Placement) ExistingTraits(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var out struct {
		Traits []string `json:"traits"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvTraits,
		path: "traits?name=in:" + strings.Join(names, ","), out: &out})
	if err != nil {
		return nil, fmt.Errorf("look up traits: %w", err)
	}
	return out.Traits, nil
}

// CreateTrait creates a CUSTOM_ trait (idempotent).
func (p *Placement) CreateTrait(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, "CUSTOM_") {
		return fmt.Errorf("create trait %s: only CUSTOM_ traits can be created", name)
	}
	_, err := p.svc.do(ctx, call{method: http.MethodPut, microversion: mvTraits,
		path: "traits/" + url.PathEscape(name), ok: []int{http.StatusCreated, http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("create trait %s: %w", name, err)
	}
	return nil
}

// UpdateProviderTraits reads the provider's traits, lets build compute the
// desired set (nova keeps externally set traits and adds or removes its
// own), creates missing CUSTOM_ traits, and writes the set if it changed,
// retrying on generation conflicts. It returns the provider generation.
func (p *Placement) UpdateProviderTraits(ctx context.Context, uuid string, build func(current []string) []string) (int, error) {
	var lastErr error
	for attempt := 0; attempt < maxGenerationRetries; attempt++ {
		cur, gen, err := p.ProviderTraits(ctx, uuid)
		if err != nil {
			return 0, err
		}
		want := slices.Clone(build(slices.Clone(cur)))
		slices.Sort(want)
		want = slices.Compact(want)
		sortedCur := slices.Sorted(slices.Values(cur))
		if slices.Equal(sortedCur, want) {
			return gen, nil
		}
		if err := p.ensureTraitsExist(ctx, want); err != nil {
			return 0, err
		}
		newGen, err := p.SetProviderTraits(ctx, uuid, gen, want)
		if err == nil {
			return newGen, nil
		}
		if !errors.Is(err, ErrGenerationConflict) {
			return 0, err
		}
		lastErr = err
	}
	return 0, fmt.Errorf("update traits of %s: gave up after %d generation conflicts: %w",
		uuid, maxGenerationRetries, lastErr)
}

// ensureTraitsExist creates the CUSTOM_ traits among names that placement
// does not know yet; a missing standard trait is an error (os-traits is
// placement's, not ours to extend).
func (p *Placement) ensureTraitsExist(ctx context.Context, names []string) error {
	have, err := p.ExistingTraits(ctx, names)
	if err != nil {
		return err
	}
	for _, n := range names {
		if slices.Contains(have, n) {
			continue
		}
		if !strings.HasPrefix(n, "CUSTOM_") {
			return fmt.Errorf("trait %s: %w (not a standard trait of this placement)", n, ErrNotFound)
		}
		if err := p.CreateTrait(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// ProviderAggregates reads a provider's aggregates (1.19).
func (p *Placement) ProviderAggregates(ctx context.Context, uuid string) ([]string, int, error) {
	var out struct {
		Aggregates []string `json:"aggregates"`
		Generation int      `json:"resource_provider_generation"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvAggregateGeneration,
		path: "resource_providers/" + url.PathEscape(uuid) + "/aggregates", out: &out})
	if err != nil {
		return nil, 0, fmt.Errorf("get aggregates of %s: %w", uuid, err)
	}
	return out.Aggregates, out.Generation, nil
}

// ProviderAllocations reads every allocation against a provider.
func (p *Placement) ProviderAllocations(ctx context.Context, uuid string) (*ProviderAllocations, error) {
	var out struct {
		Generation  int `json:"resource_provider_generation"`
		Allocations map[string]struct {
			Resources map[string]int `json:"resources"`
		} `json:"allocations"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet,
		path: "resource_providers/" + url.PathEscape(uuid) + "/allocations", out: &out})
	if err != nil {
		return nil, fmt.Errorf("get allocations against %s: %w", uuid, err)
	}
	pa := &ProviderAllocations{Generation: out.Generation, Allocations: map[string]map[string]int{}}
	for c, a := range out.Allocations {
		pa.Allocations[c] = a.Resources
	}
	return pa, nil
}

type allocationBody struct {
	Generation *int           `json:"generation,omitempty"`
	Resources  map[string]int `json:"resources"`
}

// ConsumerAllocations reads one consumer's allocations (1.28). A consumer
// with no allocations yields empty Allocations and a nil ConsumerGeneration.
func (p *Placement) ConsumerAllocations(ctx context.Context, consumer string) (*ConsumerAllocations, error) {
	var out struct {
		Allocations        map[string]allocationBody `json:"allocations"`
		ConsumerGeneration *int                      `json:"consumer_generation"`
		ProjectID          string                    `json:"project_id"`
		UserID             string                    `json:"user_id"`
	}
	_, err := p.svc.do(ctx, call{method: http.MethodGet, microversion: mvConsumerGeneration,
		path: "allocations/" + url.PathEscape(consumer), out: &out})
	if err != nil {
		return nil, fmt.Errorf("get allocations of consumer %s: %w", consumer, err)
	}
	ca := &ConsumerAllocations{Allocations: map[string]map[string]int{}, ProviderGenerations: map[string]int{},
		ConsumerGeneration: out.ConsumerGeneration, ProjectID: out.ProjectID, UserID: out.UserID}
	for rp, a := range out.Allocations {
		ca.Allocations[rp] = a.Resources
		if a.Generation != nil {
			ca.ProviderGenerations[rp] = *a.Generation
		}
	}
	return ca, nil
}

// PutConsumerAllocations replaces a consumer's allocations (1.28).
// ConsumerGeneration must be nil for a new consumer and the current value
// otherwise; a mismatch is ErrGenerationConflict. Empty Allocations remove
// them (nova's non-forced delete).
func (p *Placement) PutConsumerAllocations(ctx context.Context, consumer string, a ConsumerAllocations) error {
	allocs := map[string]allocationBody{}
	for rp, res := range a.Allocations {
		allocs[rp] = allocationBody{Resources: res}
	}
	body := map[string]any{"allocations": allocs, "consumer_generation": a.ConsumerGeneration,
		"project_id": a.ProjectID, "user_id": a.UserID}
	_, err := p.svc.do(ctx, call{method: http.MethodPut, microversion: mvConsumerGeneration,
		path: "allocations/" + url.PathEscape(consumer), body: body, ok: []int{http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("put allocations of consumer %s: %w", consumer, err)
	}
	return nil
}

// PostAllocations writes the allocations of several consumers in one
// transaction (POST /allocations, 1.28): all are written or none is, which is
// how nova moves allocations between an instance and its migration. Each
// consumer's ConsumerGeneration follows PutConsumerAllocations' rules; a
// mismatch on any of them is ErrGenerationConflict and nothing changes.
func (p *Placement) PostAllocations(ctx context.Context, byConsumer map[string]ConsumerAllocations) error {
	body := map[string]any{}
	for consumer, a := range byConsumer {
		allocs := map[string]allocationBody{}
		for rp, res := range a.Allocations {
			allocs[rp] = allocationBody{Resources: res}
		}
		body[consumer] = map[string]any{"allocations": allocs, "consumer_generation": a.ConsumerGeneration,
			"project_id": a.ProjectID, "user_id": a.UserID}
	}
	_, err := p.svc.do(ctx, call{method: http.MethodPost, microversion: mvConsumerGeneration,
		path: "allocations", body: body, ok: []int{http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("post allocations of %d consumers: %w", len(byConsumer), err)
	}
	return nil
}

// DeleteConsumerAllocations deletes all allocations of a consumer (nova's
// forced delete, no microversion). It reports false, without error, when the
// consumer had none.
func (p *Placement) DeleteConsumerAllocations(ctx context.Context, consumer string) (bool, error) {
	_, err := p.svc.do(ctx, call{method: http.MethodDelete,
		path: "allocations/" + url.PathEscape(consumer), ok: []int{http.StatusNoContent}})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete allocations of consumer %s: %w", consumer, err)
	}
	return true, nil
}
