package cloudtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Keystone is a stateful fake of keystone v3's password authentication: it
// issues tokens with a catalog, expires them, and lets a test revoke them
// to exercise re-authentication.
type Keystone struct {
	// Server is the running fake; its URL + "/v3" is the auth_url.
	Server *httptest.Server

	mu       sync.Mutex
	users    map[string]string // username -> password
	catalog  map[string]string // service type -> URL (interface "internal" and "public")
	region   string
	ttl      time.Duration
	now      func() time.Time
	tokens   map[string]tokenInfo
	issued   int
	authReqs []map[string]any
}

type tokenInfo struct {
	user    string
	expires time.Time
}

// NewKeystone starts a fake keystone. Close its Server when done.
func NewKeystone() *Keystone {
	k := &Keystone{users: map[string]string{}, catalog: map[string]string{}, region: "RegionOne",
		ttl: time.Hour, now: time.Now, tokens: map[string]tokenInfo{}}
	k.Server = httptest.NewServer(http.HandlerFunc(k.serve))
	return k
}

// AuthURL returns the v3 auth URL of the fake.
func (k *Keystone) AuthURL() string { return k.Server.URL + "/v3" }

// AddUser registers credentials that authenticate.
func (k *Keystone) AddUser(name, password string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.users[name] = password
}

// SetEndpoint puts serviceType at url into the catalog of new tokens.
func (k *Keystone) SetEndpoint(serviceType, url string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.catalog[serviceType] = url
}

// SetTTL sets the lifetime of tokens issued from now on.
func (k *Keystone) SetTTL(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ttl = d
}

// SetClock replaces time.Now for expiry.
func (k *Keystone) SetClock(now func() time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.now = now
}

// Issued returns how many tokens were issued.
func (k *Keystone) Issued() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.issued
}

// AuthRequests returns the bodies of the token requests received.
func (k *Keystone) AuthRequests() []map[string]any {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]map[string]any(nil), k.authReqs...)
}

// RevokeAll invalidates every token issued so far.
func (k *Keystone) RevokeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokens = map[string]tokenInfo{}
}

// Valid reports whether token is a live token; other fakes use it to answer 401.
func (k *Keystone) Valid(token string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	ti, ok := k.tokens[token]
	return ok && k.now().Before(ti.expires)
}

// UserOf returns the user a live token was issued to.
func (k *Keystone) UserOf(token string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tokens[token].user
}

func (k *Keystone) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/v3" || r.URL.Path == "/v3/"):
		writeJSON(w, http.StatusOK, map[string]any{"version": map[string]any{
			"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
			"links":       []any{map[string]any{"rel": "self", "href": k.Server.URL + "/v3/"}},
			"media-types": []any{map[string]any{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
		}})
	case r.Method == http.MethodPost && r.URL.Path == "/v3/auth/tokens":
		k.issue(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": 404, "message": "not found"}})
	}
}

func (k *Keystone) issue(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "message": err.Error()}})
		return
	}
	var body struct {
		Auth struct {
			Identity struct {
				Password struct {
					User struct {
						Name     string `json:"name"`
						ID       string `json:"id"`
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
		} `json:"auth"`
	}
	raw, _ := json.Marshal(req)
	_ = json.Unmarshal(raw, &body)
	u := body.Auth.Identity.Password.User
	name := u.Name
	if name == "" {
		name = u.ID
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.authReqs = append(k.authReqs, req)
	if pw, ok := k.users[name]; !ok || pw != u.Password {
		writeJSONLocked(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "gAAAA" + hex.EncodeToString(b)
	exp := k.now().Add(k.ttl).UTC()
	k.tokens[tok] = tokenInfo{user: name, expires: exp}
	k.issued++
	var catalog []any
	for typ, url := range k.catalog {
		var eps []any
		for _, iface := range []string{"internal", "public"} {
			eps = append(eps, map[string]any{"id": typ + "-" + iface, "interface": iface,
				"region": k.region, "region_id": k.region, "url": url})
		}
		catalog = append(catalog, map[string]any{"type": typ, "name": typ, "id": typ, "endpoints": eps})
	}
	w.Header().Set("X-Subject-Token", tok)
	writeJSONLocked(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"expires_at": exp.Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  k.now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": name + "-id", "name": name, "domain": map[string]any{"id": "default", "name": "Default"}},
		"project":    map[string]any{"id": "service-id", "name": "service", "domain": map[string]any{"id": "default", "name": "Default"}},
		"catalog":    catalog,
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) { writeJSONLocked(w, status, v) }

func writeJSONLocked(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
