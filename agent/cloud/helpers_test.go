package cloud_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// authFor returns a password section for a user of the fake keystone.
func authFor(k *cloudtest.Keystone, user string) config.KeystoneAuth {
	return config.KeystoneAuth{AuthType: "password", AuthURL: k.AuthURL(), Username: user, Password: user + "-pw",
		ProjectName: "service", UserDomainName: "Default", ProjectDomainName: "Default", RegionName: "RegionOne",
		ValidInterfaces: []string{"internal", "public"}}
}

func newKeystone(t *testing.T, users ...string) *cloudtest.Keystone {
	t.Helper()
	k := cloudtest.NewKeystone()
	t.Cleanup(k.Server.Close)
	for _, u := range users {
		k.AddUser(u, u+"-pw")
	}
	return k
}

func session(t *testing.T, k *cloudtest.Keystone, user, serviceType string, opts ...cloud.Option) *cloud.Session {
	t.Helper()
	a := authFor(k, user)
	a.ServiceType = serviceType
	s, err := cloud.NewSession(context.Background(), a, opts...)
	if err != nil {
		t.Fatalf("NewSession(%s): %v", user, err)
	}
	return s
}

// recorded is one line of the nova-zed http-*.jsonl fixtures.
type recorded struct {
	Method   string            `json:"method"`
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers"`
	Body     json.RawMessage   `json:"body"`
	Status   int               `json:"status"`
	RespBody json.RawMessage   `json:"resp_body"`
}

func loadRecording(t *testing.T, name, urlPrefix string) []recorded {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.HasPrefix(r.URL, urlPrefix) {
			r.URL = strings.TrimPrefix(r.URL, urlPrefix)
			out = append(out, r)
		}
	}
	return out
}

// seen is a request as the replay server received it.
type seen struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// replay serves recorded answers: each request must match an unused
// recorded request with the same method, path, query (order-insensitive),
// microversion and JSON body; anything else is a test failure.
type replay struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	recs   []recorded
	used   []bool
	seen   []seen
	strict bool
}

func newReplay(t *testing.T, recs []recorded) *replay {
	r := &replay{t: t, recs: recs, used: make([]bool, len(recs))}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func samePathQuery(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	pa, pb := strings.TrimSuffix(ua.Path, "/"), strings.TrimSuffix(ub.Path, "/")
	return pa == pb && reflect.DeepEqual(ua.Query(), ub.Query())
}

func jsonEqual(a, b []byte) bool {
	if len(bytes.TrimSpace(a)) == 0 || string(bytes.TrimSpace(a)) == "null" {
		return len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null"
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func (r *replay) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, seen{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body})
	for i, rec := range r.recs {
		if r.used[i] || rec.Method != req.Method || !samePathQuery(rec.URL, req.URL.RequestURI()) {
			continue
		}
		if got, want := req.Header.Get("OpenStack-API-Version"), rec.Headers["OpenStack-API-Version"]; got != want {
			r.t.Errorf("%s %s: microversion %q, nova sent %q", req.Method, req.URL, got, want)
		}
		if !jsonEqual(rec.Body, body) {
			r.t.Errorf("%s %s: body\n  %s\nnova sent\n  %s", req.Method, req.URL, body, rec.Body)
		}
		r.used[i] = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Status)
		_, _ = w.Write(rec.RespBody)
		return
	}
	r.t.Errorf("unexpected request %s %s %s", req.Method, req.URL, body)
	http.Error(w, "unexpected", http.StatusTeapot)
}

func isNotFoundErr(err error) bool { return errors.Is(err, cloud.ErrNotFound) }
