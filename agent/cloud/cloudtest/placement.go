package cloudtest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// StandardTraits are the os-traits names placement knows from the start: the list of the
// os-traits release Zed's placement loads, so a trait the real service would refuse is refused
// here too.
var StandardTraits = func() []string {
	var out []string
	for _, l := range strings.Split(osTraits, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}()

//go:embed os-traits.txt
var osTraits string

// standardClasses are placement's standard resource classes the agent uses.
var standardClasses = []string{"VCPU", "MEMORY_MB", "DISK_GB", "PCPU", "SRIOV_NET_VF", "NET_BW_EGR_KILOBIT_PER_SEC"}

// Placement is an in-memory, stateful fake of the placement API for the
// calls a compute makes: providers with generations, inventories with
// in-use checks, traits, aggregates and consumer allocations with consumer
// generations and capacity checks. Conflicts answer 409 with the same
// error codes as placement 8.0.0. It passes the same conformance suite
// (RunPlacementSuite) as the real service.
type Placement struct {
	// Server is the running fake.
	Server *httptest.Server
	// Auth, if set, decides whether an X-Auth-Token is valid; otherwise any
	// non-empty token is accepted.
	Auth func(token string) bool

	mu        sync.Mutex
	providers map[string]*provider
	traits    map[string]bool
	classes   map[string]bool
	consumers map[string]*consumer
	requests  []Request
}

// Request is one request the fake received.
type Request struct {
	Method       string
	Path         string // with query
	Microversion string
	Body         []byte
}

type provider struct {
	uuid, name  string
	generation  int
	inventories map[string]inventory
	traits      []string
	aggregates  []string
}

type inventory struct {
	Total           int     `json:"total"`
	Reserved        int     `json:"reserved"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	StepSize        int     `json:"step_size"`
	AllocationRatio float64 `json:"allocation_ratio"`
}

type consumer struct {
	generation    int
	project, user string
	allocations   map[string]map[string]int // rp -> rc -> n
}

// NewPlacement starts a fake placement. Close its Server when done.
func NewPlacement() *Placement {
	p := &Placement{providers: map[string]*provider{}, traits: map[string]bool{}, classes: map[string]bool{},
		consumers: map[string]*consumer{}}
	for _, t := range StandardTraits {
		p.traits[t] = true
	}
	for _, c := range standardClasses {
		p.classes[c] = true
	}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// Requests returns the requests received so far.
func (p *Placement) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// BumpGeneration simulates another writer changing the provider.
func (p *Placement) BumpGeneration(uuid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rp := p.providers[uuid]; rp != nil {
		rp.generation++
	}
}

var (
	reRP        = regexp.MustCompile(`^/resource_providers/([^/]+)$`)
	reRPSub     = regexp.MustCompile(`^/resource_providers/([^/]+)/(inventories|traits|aggregates|allocations)$`)
	reTrait     = regexp.MustCompile(`^/traits/([^/]+)$`)
	reClass     = regexp.MustCompile(`^/resource_classes/([^/]+)$`)
	reConsumer  = regexp.MustCompile(`^/allocations/([^/]+)$`)
	reMicroVers = regexp.MustCompile(`^placement (\d+)\.(\d+)$`)
)

func (p *Placement) serve(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = readAll(r)
	}
	mvHeader := r.Header.Get("OpenStack-API-Version")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, Request{Method: r.Method, Path: r.URL.RequestURI(), Microversion: mvHeader, Body: body})

	if r.URL.Path == "/" || r.URL.Path == "" {
		writeJSONLocked(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
			"id": "v1.0", "max_version": "1.39", "min_version": "1.0", "status": "CURRENT",
			"links": []any{map[string]any{"rel": "self", "href": ""}}}}})
		return
	}
	tok := r.Header.Get("X-Auth-Token")
	if tok == "" || (p.Auth != nil && !p.Auth(tok)) {
		placementError(w, http.StatusUnauthorized, "", "The request you have made requires authentication.")
		return
	}
	mv := [2]int{1, 0}
	if mvHeader != "" {
		m := reMicroVers.FindStringSubmatch(mvHeader)
		if m == nil {
			placementError(w, http.StatusBadRequest, "", "invalid microversion "+mvHeader)
			return
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		mv = [2]int{a, b}
		if a != 1 || b > 39 {
			placementError(w, http.StatusNotAcceptable, "", "unacceptable microversion "+mvHeader)
			return
		}
	}
	atLeast := func(minor int) bool { return mv[1] >= minor }
	w = &codeWriter{ResponseWriter: w, codes: atLeast(23)}

	path := r.URL.Path
	switch {
	case path == "/resource_providers" && r.Method == http.MethodGet:
		p.listProviders(w, r, atLeast(14))
	case path == "/allocations" && r.Method == http.MethodPost:
		if !atLeast(28) {
			placementError(w, http.StatusBadRequest, "", "this fake implements POST /allocations at >= 1.28 only")
			return
		}
		p.postAllocations(w, body)
	case path == "/resource_providers" && r.Method == http.MethodPost:
		p.createProvider(w, body, atLeast(20))
	case reRP.MatchString(path):
		uuid := reRP.FindStringSubmatch(path)[1]
		switch r.Method {
		case http.MethodGet:
			rp := p.providers[uuid]
			if rp == nil {
				placementError(w, http.StatusNotFound, "", "No resource provider with uuid "+uuid+" found")
				return
			}
			writeJSONLocked(w, http.StatusOK, rp.doc())
		case http.MethodDelete:
			p.deleteProvider(w, uuid)
		default:
			placementError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	case reRPSub.MatchString(path):
		m := reRPSub.FindStringSubmatch(path)
		rp := p.providers[m[1]]
		if rp == nil {
			placementError(w, http.StatusNotFound, "", "No resource provider with uuid "+m[1]+" found")
			return
		}
		switch {
		case m[2] == "traits" && !atLeast(6), m[2] == "aggregates" && r.Method == http.MethodPut && !atLeast(19):
			placementError(w, http.StatusNotFound, "", "not available at this microversion")
		case m[2] == "inventories" && r.Method == http.MethodGet:
			writeJSONLocked(w, http.StatusOK, map[string]any{"inventories": rp.inventoriesDoc(), "resource_provider_generation": rp.generation})
		case m[2] == "inventories" && r.Method == http.MethodPut:
			p.putInventories(w, rp, body)
		case m[2] == "traits" && r.Method == http.MethodGet:
			writeJSONLocked(w, http.StatusOK, map[string]any{"traits": rp.traitList(), "resource_provider_generation": rp.generation})
		case m[2] == "traits" && r.Method == http.MethodPut:
			p.putTraits(w, rp, body)
		case m[2] == "aggregates" && r.Method == http.MethodGet:
			doc := map[string]any{"aggregates": append([]string{}, rp.aggregates...)}
			if atLeast(19) {
				doc["resource_provider_generation"] = rp.generation
			}
			writeJSONLocked(w, http.StatusOK, doc)
		case m[2] == "allocations" && r.Method == http.MethodGet:
			allocs := map[string]any{}
			for cu, c := range p.consumers {
				if res, ok := c.allocations[rp.uuid]; ok {
					allocs[cu] = map[string]any{"resources": res}
				}
			}
			writeJSONLocked(w, http.StatusOK, map[string]any{"allocations": allocs, "resource_provider_generation": rp.generation})
		default:
			placementError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	case path == "/traits" && r.Method == http.MethodGet && atLeast(6):
		var names []string
		if q := r.URL.Query().Get("name"); strings.HasPrefix(q, "in:") {
			for _, n := range strings.Split(q[3:], ",") {
				if p.traits[n] {
					names = append(names, n)
				}
			}
		} else {
			names = slices.Collect(maps.Keys(p.traits))
		}
		slices.Sort(names)
		writeJSONLocked(w, http.StatusOK, map[string]any{"traits": append([]string{}, names...)})
	case reTrait.MatchString(path) && r.Method == http.MethodPut && atLeast(6):
		p.putNamed(w, p.traits, reTrait.FindStringSubmatch(path)[1], "trait")
	case reClass.MatchString(path) && r.Method == http.MethodPut && atLeast(7):
		p.putNamed(w, p.classes, reClass.FindStringSubmatch(path)[1], "resource class")
	case reConsumer.MatchString(path):
		cu := reConsumer.FindStringSubmatch(path)[1]
		switch r.Method {
		case http.MethodGet:
			p.getConsumer(w, cu, atLeast(28))
		case http.MethodPut:
			if !atLeast(28) {
				placementError(w, http.StatusBadRequest, "", "this fake implements PUT /allocations at >= 1.28 only")
				return
			}
			p.putConsumer(w, cu, body)
		case http.MethodDelete:
			c := p.consumers[cu]
			if c == nil || len(c.allocations) == 0 {
				placementError(w, http.StatusNotFound, "", "No allocations for consumer '"+cu+"'")
				return
			}
			p.bumpFor(c.allocations)
			delete(p.consumers, cu)
			w.WriteHeader(http.StatusNoContent)
		default:
			placementError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	default:
		placementError(w, http.StatusNotFound, "", "The resource could not be found.")
	}
}

func (rp *provider) doc() map[string]any {
	return map[string]any{"uuid": rp.uuid, "name": rp.name, "generation": rp.generation,
		"parent_provider_uuid": nil, "root_provider_uuid": rp.uuid,
		"links": []any{map[string]any{"rel": "self", "href": "/resource_providers/" + rp.uuid}}}
}

func (rp *provider) inventoriesDoc() map[string]inventory {
	out := map[string]inventory{}
	maps.Copy(out, rp.inventories)
	return out
}

func (rp *provider) traitList() []string {
	out := append([]string{}, rp.traits...)
	slices.Sort(out)
	return out
}

func (p *Placement) listProviders(w http.ResponseWriter, r *http.Request, nested bool) {
	q := r.URL.Query()
	if q.Has("in_tree") && !nested {
		placementError(w, http.StatusBadRequest, "", "Invalid query string parameters: 'in_tree' was unexpected")
		return
	}
	out := []any{}
	for _, uuid := range slices.Sorted(maps.Keys(p.providers)) {
		rp := p.providers[uuid]
		if v := q.Get("in_tree"); v != "" && v != uuid {
			continue
		}
		if v := q.Get("name"); v != "" && v != rp.name {
			continue
		}
		if v := q.Get("uuid"); v != "" && v != uuid {
			continue
		}
		out = append(out, rp.doc())
	}
	writeJSONLocked(w, http.StatusOK, map[string]any{"resource_providers": out})
}

// genConflict is placement's message for a stale provider generation.
const genConflict = "There was a conflict when trying to complete your request.\n\n Resource provider's generation already changed. Please update the generation and try again.  "

var reUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

func (p *Placement) createProvider(w http.ResponseWriter, body []byte, returnsBody bool) {
	var req struct {
		UUID string `json:"uuid"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Name == "" || (req.UUID != "" && !reUUID.MatchString(req.UUID)) {
		placementError(w, http.StatusBadRequest, "", "JSON does not validate")
		return
	}
	if req.UUID == "" {
		placementError(w, http.StatusBadRequest, "", "this fake needs an explicit uuid")
		return
	}
	for _, rp := range p.providers {
		if rp.name == req.Name {
			placementError(w, http.StatusConflict, "placement.duplicate_name",
				fmt.Sprintf("Conflicting resource provider name: %s already exists.", req.Name))
			return
		}
	}
	if p.providers[req.UUID] != nil {
		placementError(w, http.StatusConflict, "placement.duplicate_uuid",
			fmt.Sprintf("Conflicting resource provider uuid: %s already exists.", req.UUID))
		return
	}
	rp := &provider{uuid: req.UUID, name: req.Name, inventories: map[string]inventory{}}
	p.providers[req.UUID] = rp
	w.Header().Set("Location", "/resource_providers/"+req.UUID)
	if !returnsBody {
		w.WriteHeader(http.StatusCreated)
		return
	}
	writeJSONLocked(w, http.StatusOK, rp.doc())
}

func (p *Placement) deleteProvider(w http.ResponseWriter, uuid string) {
	if p.providers[uuid] == nil {
		placementError(w, http.StatusNotFound, "", "No resource provider with uuid "+uuid+" found for delete")
		return
	}
	if p.usage(uuid) != nil {
		placementError(w, http.StatusConflict, "placement.resource_provider.cannot_delete_in_use",
			"Unable to delete resource provider "+uuid+": Resource provider has allocations.")
		return
	}
	delete(p.providers, uuid)
	w.WriteHeader(http.StatusNoContent)
}

// usage returns rc -> used on a provider, nil if nothing is allocated.
func (p *Placement) usage(uuid string) map[string]int {
	var used map[string]int
	for _, c := range p.consumers {
		for rc, n := range c.allocations[uuid] {
			if used == nil {
				used = map[string]int{}
			}
			used[rc] += n
		}
	}
	return used
}

func (p *Placement) putInventories(w http.ResponseWriter, rp *provider, body []byte) {
	var req struct {
		Generation  *int                 `json:"resource_provider_generation"`
		Inventories map[string]inventory `json:"inventories"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Generation == nil || req.Inventories == nil {
		placementError(w, http.StatusBadRequest, "", "JSON does not validate")
		return
	}
	if *req.Generation != rp.generation {
		placementError(w, http.StatusConflict, "placement.concurrent_update",
			genConflict)
		return
	}
	// Defaults and validation as placement applies them.
	for rc, inv := range req.Inventories {
		if !p.classes[rc] {
			placementError(w, http.StatusBadRequest, "", "Unknown resource class in inventory for resource provider "+rp.uuid+": "+rc)
			return
		}
		if inv.MinUnit == 0 {
			inv.MinUnit = 1
		}
		if inv.MaxUnit == 0 {
			inv.MaxUnit = inv.Total
		}
		if inv.StepSize == 0 {
			inv.StepSize = 1
		}
		if inv.AllocationRatio == 0 {
			inv.AllocationRatio = 1.0
		}
		if inv.Total < 1 || inv.Reserved > inv.Total || inv.Reserved < 0 {
			placementError(w, http.StatusBadRequest, "", "Unable to update inventory for resource provider "+rp.uuid+": invalid inventory for "+rc)
			return
		}
		req.Inventories[rc] = inv
	}
	used := p.usage(rp.uuid)
	for rc, n := range used {
		if _, kept := req.Inventories[rc]; !kept && n > 0 {
			placementError(w, http.StatusConflict, "placement.inventory.inuse",
				fmt.Sprintf("update conflict: Inventory for '%s' on resource provider '%s' in use.", rc, rp.uuid))
			return
		}
	}
	rp.inventories = req.Inventories
	rp.generation++
	writeJSONLocked(w, http.StatusOK, map[string]any{"inventories": rp.inventoriesDoc(), "resource_provider_generation": rp.generation})
}

func (p *Placement) putTraits(w http.ResponseWriter, rp *provider, body []byte) {
	var req struct {
		Generation *int     `json:"resource_provider_generation"`
		Traits     []string `json:"traits"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Generation == nil || req.Traits == nil {
		placementError(w, http.StatusBadRequest, "", "JSON does not validate")
		return
	}
	var missing []string
	for _, t := range req.Traits {
		if !p.traits[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		placementError(w, http.StatusBadRequest, "", "No such trait(s): "+strings.Join(missing, ", "))
		return
	}
	if *req.Generation != rp.generation {
		placementError(w, http.StatusConflict, "placement.concurrent_update", genConflict)
		return
	}
	slices.Sort(req.Traits)
	rp.traits = slices.Compact(req.Traits)
	rp.generation++
	writeJSONLocked(w, http.StatusOK, map[string]any{"traits": rp.traitList(), "resource_provider_generation": rp.generation})
}

func (p *Placement) putNamed(w http.ResponseWriter, set map[string]bool, name, what string) {
	if !regexp.MustCompile(`^CUSTOM_[A-Z0-9_]+$`).MatchString(name) {
		placementError(w, http.StatusBadRequest, "", "The "+what+" name must start with CUSTOM_ and use [A-Z0-9_]")
		return
	}
	if set[name] {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	set[name] = true
	w.WriteHeader(http.StatusCreated)
}

func (p *Placement) getConsumer(w http.ResponseWriter, cu string, withGen bool) {
	c := p.consumers[cu]
	allocs := map[string]any{}
	if c == nil {
		writeJSONLocked(w, http.StatusOK, map[string]any{"allocations": allocs})
		return
	}
	for rpu, res := range c.allocations {
		allocs[rpu] = map[string]any{"generation": p.providers[rpu].generation, "resources": res}
	}
	doc := map[string]any{"allocations": allocs, "project_id": c.project, "user_id": c.user}
	if withGen {
		doc["consumer_generation"] = c.generation
	}
	writeJSONLocked(w, http.StatusOK, doc)
}

// consumerWrite is one consumer's part of a PUT or POST /allocations body.
type consumerWrite struct {
	Allocations map[string]struct {
		Resources map[string]int `json:"resources"`
	} `json:"allocations"`
	ConsumerGeneration *int   `json:"consumer_generation"`
	ProjectID          string `json:"project_id"`
	UserID             string `json:"user_id"`
}

func (p *Placement) putConsumer(w http.ResponseWriter, cu string, body []byte) {
	var req consumerWrite
	if err := json.Unmarshal(body, &req); err != nil {
		placementError(w, http.StatusBadRequest, "", "JSON does not validate")
		return
	}
	p.writeConsumers(w, map[string]consumerWrite{cu: req})
}

// postAllocations is POST /allocations: every consumer written, or none.
func (p *Placement) postAllocations(w http.ResponseWriter, body []byte) {
	var req map[string]consumerWrite
	if err := json.Unmarshal(body, &req); err != nil || len(req) == 0 {
		placementError(w, http.StatusBadRequest, "", "JSON does not validate")
		return
	}
	p.writeConsumers(w, req)
}

// writeConsumers checks generations and capacity for all the writes against
// the usage they leave behind, then applies them together.
func (p *Placement) writeConsumers(w http.ResponseWriter, writes map[string]consumerWrite) {
	newAllocs := map[string]map[string]map[string]int{} // consumer -> rp -> rc -> n
	for cu, req := range writes {
		if req.Allocations == nil || req.ProjectID == "" || req.UserID == "" {
			placementError(w, http.StatusBadRequest, "", "JSON does not validate")
			return
		}
		old := p.consumers[cu]
		switch {
		case old == nil && req.ConsumerGeneration != nil:
			placementError(w, http.StatusConflict, "placement.concurrent_update",
				"consumer generation conflict - expected null but got "+strconv.Itoa(*req.ConsumerGeneration))
			return
		case old != nil && (req.ConsumerGeneration == nil || *req.ConsumerGeneration != old.generation):
			placementError(w, http.StatusConflict, "placement.concurrent_update",
				fmt.Sprintf("consumer generation conflict - expected %d", old.generation))
			return
		}
		na := map[string]map[string]int{}
		for rpu, a := range req.Allocations {
			rp := p.providers[rpu]
			if rp == nil {
				placementError(w, http.StatusBadRequest, "", "Allocation for resource provider '"+rpu+"' that does not exist.")
				return
			}
			for rc, n := range a.Resources {
				inv, ok := rp.inventories[rc]
				if !ok {
					placementError(w, http.StatusBadRequest, "", fmt.Sprintf("Unable to allocate inventory: Inventory for '%s' on resource provider '%s' invalid.", rc, rpu))
					return
				}
				if n < inv.MinUnit || n > inv.MaxUnit || n%inv.StepSize != 0 {
					placementError(w, http.StatusConflict, "", fmt.Sprintf("Unable to allocate inventory: Unable to create allocation for '%s' on resource provider '%s'. The requested amount would violate inventory constraints.", rc, rpu))
					return
				}
			}
			na[rpu] = maps.Clone(a.Resources)
		}
		newAllocs[cu] = na
	}
	// Capacity: every class written, against its provider's usage once all writes apply.
	after := map[string]map[string]int{} // rp -> rc -> used
	at := func(rpu string) map[string]int {
		if after[rpu] == nil {
			after[rpu] = map[string]int{}
			maps.Copy(after[rpu], p.usage(rpu))
		}
		return after[rpu]
	}
	for cu, na := range newAllocs {
		for rpu, res := range na {
			for rc, n := range res {
				at(rpu)[rc] += n
			}
		}
		if old := p.consumers[cu]; old != nil {
			for rpu, res := range old.allocations {
				for rc, n := range res {
					at(rpu)[rc] -= n
				}
			}
		}
	}
	for _, na := range newAllocs {
		for rpu, res := range na {
			for rc := range res {
				inv := p.providers[rpu].inventories[rc]
				if capacity := int(float64(inv.Total-inv.Reserved) * inv.AllocationRatio); after[rpu][rc] > capacity {
					placementError(w, http.StatusConflict, "",
						fmt.Sprintf("Unable to allocate inventory: Unable to create allocation for '%s' on resource provider '%s'. The requested amount would exceed the capacity.", rc, rpu))
					return
				}
			}
		}
	}
	for cu, na := range newAllocs {
		old, req := p.consumers[cu], writes[cu]
		if old != nil {
			p.bumpFor(old.allocations)
		}
		p.bumpFor(na)
		if len(na) == 0 {
			delete(p.consumers, cu)
			continue
		}
		gen := 1 // a new consumer is created at 0 and bumped by its first write
		if old != nil {
			gen = old.generation + 1
		}
		p.consumers[cu] = &consumer{generation: gen, project: req.ProjectID, user: req.UserID, allocations: na}
	}
	w.WriteHeader(http.StatusNoContent)
}

// bumpFor increments the generation of every provider in allocs, as
// placement does when allocations against a provider change.
func (p *Placement) bumpFor(allocs map[string]map[string]int) {
	for rpu := range allocs {
		if rp := p.providers[rpu]; rp != nil {
			rp.generation++
		}
	}
}

// placementError answers in placement's error format. Like placement, it
// sends error codes only from microversion 1.23 on; the caller's
// microversion is stashed in the response writer by serve.
func placementError(w http.ResponseWriter, status int, code, detail string) {
	e := map[string]any{"status": status, "title": http.StatusText(status), "detail": detail, "request_id": "req-fake"}
	if cw, ok := w.(*codeWriter); !ok || cw.codes {
		if code == "" {
			code = "placement.undefined_code"
		}
		e["code"] = code
	}
	writeJSONLocked(w, status, map[string]any{"errors": []any{e}})
}

// codeWriter carries whether error codes are sent at the request's microversion.
type codeWriter struct {
	http.ResponseWriter
	codes bool
}

func readAll(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
		if b.Len() > 8<<20 {
			break
		}
	}
	return []byte(b.String()), nil
}
