package rpc

import (
	"context"
	"strings"
)

// Handler dispatches a request. The returned value is JSON-encoded as the reply's result; an
// error becomes an oslo failure (see Failure for how to pick the exception class).
type Handler interface {
	Handle(ctx context.Context, req *Request) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, req *Request) (any, error) { return f(ctx, req) }

// Endpoint is one oslo RPC endpoint: the methods served under a namespace and version, like a
// Python endpoint object with its Target(namespace=..., version=...).
type Endpoint struct {
	// Namespace is "" for the null namespace (nova's ComputeManager), e.g. "baseapi" for ping.
	Namespace string
	// Version is the highest version served, e.g. "6.1"; "" accepts any version (Target()).
	Version string
	// Methods maps method names to handlers. Names starting with "_" are never dispatched
	// (oslo's DefaultRPCAccessPolicy).
	Methods map[string]HandlerFunc
}

// Dispatcher routes requests to endpoints with the rules of oslo's RPCDispatcher.dispatch:
// endpoints are tried in order; one matches if the namespace is equal and the version compatible
// (same major, minor not above the endpoint's). The first matching endpoint with the method runs
// it; if some endpoint matched but none has the method the failure is NoSuchMethod, if none
// matched it is UnsupportedVersion.
type Dispatcher struct {
	endpoints []Endpoint
}

var _ Handler = (*Dispatcher)(nil)

// NewDispatcher returns a dispatcher over the endpoints, tried in the given order.
func NewDispatcher(endpoints ...Endpoint) *Dispatcher {
	return &Dispatcher{endpoints: endpoints}
}

// Handle implements Handler.
func (d *Dispatcher) Handle(ctx context.Context, req *Request) (any, error) {
	foundCompatible := false
	for _, ep := range d.endpoints {
		if ep.Namespace != req.Namespace {
			continue
		}
		ok, f := endpointAccepts(ep.Version, req)
		if f != nil {
			return nil, f
		}
		if !ok {
			continue
		}
		if req.methodMissing {
			// Python: hasattr(endpoint, None)
			return nil, pyException("TypeError", "attribute name must be string, not 'NoneType'")
		}
		if fn, ok := ep.Methods[req.Method]; ok && !strings.HasPrefix(req.Method, "_") {
			return fn(ctx, req)
		}
		foundCompatible = true
	}
	if foundCompatible {
		return nil, NoSuchMethod(pyStr(req.Method, req.methodMissing))
	}
	method := req.Method
	if req.methodMissing {
		method = ""
	}
	return nil, UnsupportedVersion(pyStr(req.Version, req.versionNull), method)
}

func endpointAccepts(served string, req *Request) (bool, *Failure) {
	if served == "" {
		return true, nil
	}
	if req.versionNull {
		return false, nil
	}
	return versionCompatible(served, req.Version)
}

// pyStr renders a possibly-None string the way Python's "%s" does.
func pyStr(s string, isNone bool) string {
	if isNone {
		return "None"
	}
	return s
}
