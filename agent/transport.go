package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// Caller is the part of an oslo RPC connection the conductor transport uses.
type Caller interface {
	Call(ctx context.Context, t rpc.Target, rctx rpc.Context, method string, args map[string]any, timeout time.Duration) (json.RawMessage, error)
	Cast(ctx context.Context, t rpc.Target, rctx rpc.Context, method string, args map[string]any) error
}

var _ Caller = (*rpc.Conn)(nil)

// ConductorTransport carries conductor calls over oslo RPC: topic "conductor" on exchange nova,
// ConductorAPI version 3.0, as nova/conductor/rpcapi.py sends them.
type ConductorTransport struct {
	RPC Caller
	// Timeout is rpc_response_timeout; a deadline on ctx that is sooner wins.
	Timeout time.Duration
}

var (
	_ conductor.Caller           = ConductorTransport{}
	_ conductor.NamespacedCaller = ConductorTransport{}
	_ conductor.TaskCaster       = ConductorTransport{}
)

// Call implements conductor.Caller.
func (t ConductorTransport) Call(ctx context.Context, rctx map[string]any, method string, args map[string]any) (json.RawMessage, error) {
	return t.RPC.Call(ctx, rpc.Target{Exchange: "nova", Topic: "conductor", Version: "3.0"}, rpc.Context(rctx), method, args, t.timeout(ctx))
}

// CallNamespaced implements conductor.NamespacedCaller (the baseapi readiness ping).
func (t ConductorTransport) CallNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) (json.RawMessage, error) {
	return t.RPC.Call(ctx, rpc.Target{Exchange: "nova", Topic: "conductor", Namespace: namespace, Version: version}, rpc.Context(rctx), method, args, t.timeout(ctx))
}

// CastNamespaced implements conductor.TaskCaster.
func (t ConductorTransport) CastNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) error {
	return t.RPC.Cast(ctx, rpc.Target{Exchange: "nova", Topic: "conductor", Namespace: namespace, Version: version}, rpc.Context(rctx), method, args)
}

func (t ConductorTransport) timeout(ctx context.Context) time.Duration {
	d := t.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); d <= 0 || left < d {
			d = left
		}
	}
	return d
}
