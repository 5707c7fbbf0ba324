package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// Sentinel errors; every error returned by this package that stems from an
// HTTP status wraps one of these (test with errors.Is) and an *HTTPError
// (inspect with errors.As).
var (
	// ErrNotFound is a 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a 409 that is neither a generation conflict nor
	// inventory in use (e.g. a provider name taken by another uuid).
	ErrConflict = errors.New("conflict")
	// ErrGenerationConflict is placement's 409 placement.concurrent_update:
	// somebody else changed the provider or consumer; re-read and retry.
	ErrGenerationConflict = errors.New("generation conflict")
	// ErrInventoryInUse is placement's 409 placement.inventory.inuse: the
	// inventory being removed or shrunk has allocations against it.
	ErrInventoryInUse = errors.New("inventory in use")
	// ErrUnauthorized is a 401 that survived re-authentication.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden is a 403.
	ErrForbidden = errors.New("forbidden")
	// ErrBadRequest is a 400.
	ErrBadRequest = errors.New("bad request")
	// ErrUnavailable is a 5xx.
	ErrUnavailable = errors.New("service unavailable")
	// ErrNoEndpoint means the catalog has no endpoint for a service with the
	// configured region and interfaces.
	ErrNoEndpoint = errors.New("no endpoint in the service catalog")
	// ErrPortBindingFailed means neutron answered a binding update with
	// binding:vif_type "binding_failed".
	ErrPortBindingFailed = errors.New("port binding failed")
	// ErrNoImageData means glance has no data for the image (HTTP 204).
	ErrNoImageData = errors.New("image has no data")
)

// HTTPError describes an unexpected HTTP answer.
type HTTPError struct {
	Method string
	URL    string
	Status int
	// Code is the API's machine-readable error code when it sends one
	// (placement: "placement.concurrent_update"; neutron: the error type).
	Code string
	// Detail is the API's human-readable message.
	Detail    string
	RequestID string
	sentinel  error
}

// Error implements error.
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.URL, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Unwrap returns the sentinel matching the status.
func (e *HTTPError) Unwrap() error { return e.sentinel }

// translate turns a gophercloud error into an *HTTPError wrapping one of our
// sentinels; other errors (transport, context) pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var uc gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &uc) {
		var puc *gophercloud.ErrUnexpectedResponseCode
		if !errors.As(err, &puc) {
			return err
		}
		uc = *puc
	}
	he := &HTTPError{Method: uc.Method, URL: uc.URL, Status: uc.Actual}
	if uc.ResponseHeader != nil {
		he.RequestID = uc.ResponseHeader.Get("X-Openstack-Request-Id")
	}
	parseErrorBody(uc.Body, he)
	switch {
	case uc.Actual == http.StatusNotFound:
		he.sentinel = ErrNotFound
	case uc.Actual == http.StatusConflict && he.Code == "placement.concurrent_update",
		// Below microversion 1.23 placement sends no error codes; its
		// generation conflicts still say so in the detail.
		uc.Actual == http.StatusConflict && he.Code == "" && strings.Contains(strings.ToLower(he.Detail), "generation"):
		he.sentinel = ErrGenerationConflict
	case uc.Actual == http.StatusConflict && he.Code == "placement.inventory.inuse":
		he.sentinel = ErrInventoryInUse
	case uc.Actual == http.StatusConflict:
		he.sentinel = ErrConflict
	case uc.Actual == http.StatusUnauthorized:
		he.sentinel = ErrUnauthorized
	case uc.Actual == http.StatusForbidden:
		he.sentinel = ErrForbidden
	case uc.Actual == http.StatusBadRequest:
		he.sentinel = ErrBadRequest
	case uc.Actual >= 500:
		he.sentinel = ErrUnavailable
	default:
		he.sentinel = errors.New("unexpected status")
	}
	return he
}

// parseErrorBody understands placement's {"errors": [{"code", "detail"}]}
// and neutron's {"NeutronError": {"type", "message"}}.
func parseErrorBody(body []byte, he *HTTPError) {
	var pl struct {
		Errors []struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
			Title  string `json:"title"`
		} `json:"errors"`
		NeutronError *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"NeutronError"`
	}
	if json.Unmarshal(body, &pl) != nil {
		if len(body) > 0 && len(body) < 512 {
			he.Detail = string(body)
		}
		return
	}
	if len(pl.Errors) > 0 {
		he.Code, he.Detail = pl.Errors[0].Code, pl.Errors[0].Detail
		if he.Detail == "" {
			he.Detail = pl.Errors[0].Title
		}
	}
	if pl.NeutronError != nil {
		he.Code, he.Detail = pl.NeutronError.Type, pl.NeutronError.Message
	}
}
