package cloud

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// minTokenLife is how long a cached token must still be valid to be used;
// keystoneauth1 renews a token that expires within 120 s
// (keystoneauth1/access/access.py will_expire_soon), and so do we, so that
// a token never expires in the middle of a slow request.
const minTokenLife = 120 * time.Second

// Session is an authenticated keystone session built from one configuration
// auth section ([placement], [neutron], [glance] or [service_user]). It
// caches the token, renews it shortly before it expires, re-authenticates
// once on a 401, and resolves service endpoints from the catalog the token
// came with. A Session is safe for concurrent use.
type Session struct {
	provider *gophercloud.ProviderClient
	auth     config.KeystoneAuth
	now      func() time.Time
	mu       sync.Mutex // serializes proactive renewal
}

// Option configures NewSession.
type Option func(*options)

type options struct {
	httpClient *http.Client
	userAgent  string
	now        func() time.Time
}

// WithHTTPClient makes the session use c (tests point it at httptest
// servers); by default a client honouring the section's timeout, insecure
// and cafile options is built.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithUserAgent prepends ua (e.g. "nova-container-agent/1.0") to gophercloud's User-Agent.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithClock replaces time.Now for token expiry decisions.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// NewSession authenticates with the password plugin described by auth.
func NewSession(ctx context.Context, auth config.KeystoneAuth, opts ...Option) (*Session, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	switch auth.AuthType {
	case "password", "v3password":
	default:
		return nil, fmt.Errorf("keystone auth_type %q: only password is supported", auth.AuthType)
	}
	hc := o.httpClient
	if hc == nil {
		var err error
		if hc, err = httpClientFor(auth); err != nil {
			return nil, err
		}
	}
	provider, err := openstack.NewClient(auth.AuthURL)
	if err != nil {
		return nil, fmt.Errorf("keystone auth_url %q: %w", auth.AuthURL, err)
	}
	provider.HTTPClient = *hc
	if o.userAgent != "" {
		provider.UserAgent.Prepend(o.userAgent)
	}
	if err := openstack.Authenticate(ctx, provider, authOptions(auth)); err != nil {
		return nil, fmt.Errorf("authenticate %s at %s: %w", userLabel(auth), auth.AuthURL, translate(err))
	}
	return &Session{provider: provider, auth: auth, now: o.now}, nil
}

// authOptions maps keystoneauth's password options to gophercloud's. A
// user id needs no domain and a project id needs no domain; gophercloud
// rejects the redundant combinations, keystoneauth ignores them.
func authOptions(a config.KeystoneAuth) gophercloud.AuthOptions {
	ao := gophercloud.AuthOptions{
		IdentityEndpoint: a.AuthURL,
		Username:         a.Username,
		UserID:           a.UserID,
		Password:         a.Password,
		AllowReauth:      true,
	}
	if a.UserID == "" {
		ao.DomainID, ao.DomainName = a.UserDomainID, a.UserDomainName
		if ao.DomainID != "" {
			ao.DomainName = ""
		}
	} else {
		ao.Username = ""
	}
	scope := &gophercloud.AuthScope{ProjectID: a.ProjectID}
	if a.ProjectID == "" {
		scope.ProjectName = a.ProjectName
		scope.DomainID, scope.DomainName = a.ProjectDomainID, a.ProjectDomainName
		if scope.DomainID != "" {
			scope.DomainName = ""
		}
	}
	ao.Scope = scope
	return ao
}

func userLabel(a config.KeystoneAuth) string {
	if a.Username != "" {
		return "user " + a.Username
	}
	return "user id " + a.UserID
}

// httpClientFor builds an HTTP client from the section's TLS and timeout options.
func httpClientFor(a config.KeystoneAuth) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if a.Insecure || a.CAFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.Insecure {
			// Operators ask for this explicitly with insecure = true, as with keystoneauth.
			tc.InsecureSkipVerify = true //nolint:gosec
		}
		if a.CAFile != "" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read cafile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("cafile %s: no PEM certificates", a.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	c := &http.Client{Transport: tr}
	if a.Timeout != nil && *a.Timeout > 0 {
		c.Timeout = time.Duration(*a.Timeout * float64(time.Second))
	}
	return c, nil
}

// ExpiresAt returns the expiry of the current token, or the zero time if
// keystone did not say.
func (s *Session) ExpiresAt() time.Time {
	switch r := s.provider.GetAuthResult().(type) {
	case tokens.CreateResult:
		if t, err := r.ExtractToken(); err == nil {
			return t.ExpiresAt
		}
	case *tokens.CreateResult:
		if t, err := r.ExtractToken(); err == nil {
			return t.ExpiresAt
		}
	}
	return time.Time{}
}

// Token returns a token valid for at least two more minutes, renewing it
// first if needed.
func (s *Session) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp := s.ExpiresAt()
	if !exp.IsZero() && !s.now().Add(minTokenLife).Before(exp) {
		if err := s.provider.Reauthenticate(ctx, s.provider.Token()); err != nil {
			return "", fmt.Errorf("renew token of %s: %w", userLabel(s.auth), translate(err))
		}
	}
	return s.provider.Token(), nil
}

// Endpoint returns the base URL of serviceType: endpoint_override if set,
// else the catalog entry for region_name and the first of valid_interfaces
// that has one.
func (s *Session) Endpoint(serviceType string) (string, error) {
	if s.auth.EndpointOverride != "" {
		return gophercloud.NormalizeURL(s.auth.EndpointOverride), nil
	}
	ifaces := s.auth.ValidInterfaces
	if len(ifaces) == 0 {
		ifaces = []string{"internal", "public"}
	}
	var errs []error
	for _, iface := range ifaces {
		eo := gophercloud.EndpointOpts{Type: serviceType, Region: s.auth.RegionName,
			Availability: gophercloud.Availability(strings.TrimSuffix(iface, "URL"))}
		u, err := s.provider.EndpointLocator(eo)
		if err == nil {
			return gophercloud.NormalizeURL(u), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", iface, err))
	}
	return "", fmt.Errorf("%w: service type %q region %q: %w", ErrNoEndpoint, serviceType,
		s.auth.RegionName, errors.Join(errs...))
}

// ServiceType returns the section's service_type (filled by config defaults).
func (s *Session) ServiceType() string { return s.auth.ServiceType }

// Context keys. Request ids and user tokens ride in the context because they
// belong to the RPC request being served, not to the client.
type (
	requestIDKey struct{}
	userTokenKey struct{}
)

// WithRequestID returns a context whose HTTP requests carry
// X-OpenStack-Request-ID: id (nova's global request id, so that one
// operation can be followed across services).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// WithUserToken returns a context whose "user client" calls (those nova
// makes with the requesting user's token: creating ports, reading networks,
// glance) use token instead of the service credentials, with the
// [service_user] token as X-Service-Token when that is configured.
func WithUserToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, userTokenKey{}, token)
}

func requestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

func userTokenFrom(ctx context.Context) string {
	s, _ := ctx.Value(userTokenKey{}).(string)
	return s
}
