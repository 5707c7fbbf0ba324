package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// service is the request machinery one REST client shares: the session
// with the service credentials, an optional [service_user] session, the
// resolved base URL and a retry budget for connection failures.
type service struct {
	sess    *Session
	svcUser *Session
	base    string // ends with "/"
	retries int
}

// call describes one request.
type call struct {
	method string
	path   string // relative to base, may carry a query
	// microversion is the full OpenStack-API-Version value, "placement 1.26".
	microversion string
	body         any
	raw          io.Reader
	rawType      string
	out          any
	ok           []int
	keepBody     bool
	// asUser marks calls nova makes with the user client; see WithUserToken.
	asUser bool
}

// do performs c and translates errors. Idempotent requests (GET, HEAD) are
// retried up to s.retries times on connection errors, as nova does for
// neutron with [neutron] http_retries.
func (s *service) do(ctx context.Context, c call) (*http.Response, error) {
	url := s.base + c.path
	provider, headers, err := s.credentials(ctx, c.asUser)
	if err != nil {
		return nil, err
	}
	if c.microversion != "" {
		headers["OpenStack-API-Version"] = c.microversion
	}
	if id := requestIDFrom(ctx); id != "" {
		headers["X-OpenStack-Request-ID"] = id
	}
	if c.rawType != "" {
		headers["Content-Type"] = c.rawType
	}
	opts := &gophercloud.RequestOpts{JSONBody: c.body, RawBody: c.raw, JSONResponse: c.out,
		OkCodes: c.ok, MoreHeaders: headers, KeepResponseBody: c.keepBody}
	attempts := 1
	if c.method == http.MethodGet || c.method == http.MethodHead {
		attempts += s.retries
	}
	var resp *http.Response
	for i := 0; i < attempts; i++ {
		resp, err = provider.Request(ctx, c.method, url, opts)
		if err == nil || ctx.Err() != nil || isHTTPStatus(err) {
			break
		}
	}
	if err != nil {
		// HTTPError and net/http's errors already name the method and URL.
		return nil, translate(err)
	}
	return resp, nil
}

func isHTTPStatus(err error) bool {
	var uc gophercloud.ErrUnexpectedResponseCode
	var puc *gophercloud.ErrUnexpectedResponseCode
	return errors.As(err, &uc) || errors.As(err, &puc)
}

// credentials picks the provider (and its token) for a request: the user's
// token from the context for user-client calls when there is one, else the
// service credentials after making sure their token is fresh.
func (s *service) credentials(ctx context.Context, asUser bool) (*gophercloud.ProviderClient, map[string]string, error) {
	headers := map[string]string{}
	tok := userTokenFrom(ctx)
	// On a user's behalf nova sends the service token with both its user
	// and its admin client (nova/service_auth.py wraps either plugin).
	if tok != "" && s.svcUser != nil {
		st, err := s.svcUser.Token(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("service token: %w", err)
		}
		headers["X-Service-Token"] = st
	}
	if asUser && tok != "" {
		p := &gophercloud.ProviderClient{HTTPClient: s.sess.provider.HTTPClient,
			UserAgent: s.sess.provider.UserAgent}
		p.UseTokenLock()
		p.SetToken(tok)
		return p, headers, nil
	}
	if _, err := s.sess.Token(ctx); err != nil {
		return nil, nil, err
	}
	return s.sess.provider, headers, nil
}

// newService resolves the endpoint of sess's service type and appends the
// API version path (e.g. "v2.0/") unless the endpoint already ends with it.
func newService(sess *Session, svcUser *Session, override, versionPath string, retries int) (*service, error) {
	if sess == nil {
		return nil, errors.New("nil session")
	}
	base := override
	if base == "" {
		var err error
		if base, err = sess.Endpoint(sess.ServiceType()); err != nil {
			return nil, err
		}
	}
	base = gophercloud.NormalizeURL(base)
	if versionPath != "" && !hasSuffixFold(base, versionPath) {
		base += versionPath
	}
	return &service{sess: sess, svcUser: svcUser, base: base, retries: retries}, nil
}

func hasSuffixFold(s, suffix string) bool {
	return strings.HasSuffix(strings.ToLower(s), strings.ToLower(suffix))
}
