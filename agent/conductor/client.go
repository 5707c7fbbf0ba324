package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// Caller sends one RPC call to topic "conductor" (exchange nova, version 3.0, no
// namespace) with the given request context (oslo to_dict() keys, without the
// "_context_" prefix) and returns the reply's result. A failure reply must come back as
// an error implementing RemoteError.
type Caller interface {
	Call(ctx context.Context, rctx map[string]any, method string, args map[string]any) (json.RawMessage, error)
}

// NamespacedCaller sends one RPC call to topic "conductor" with an explicit target
// namespace and version. Only the readiness ping needs it (namespace "baseapi",
// version "1.0"). The call's timeout is the ctx deadline.
type NamespacedCaller interface {
	CallNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) (json.RawMessage, error)
}

// TaskCaster sends one cast to topic "conductor" with an explicit namespace and version:
// the compute_task API (build_instances on a reschedule) is cast, never called.
type TaskCaster interface {
	CastNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) error
}

// Sentinel errors.
var (
	// ErrNotFound: the conductor answered None where an object was asked for, or raised a
	// *NotFound exception (ComputeHostNotFound, InstanceNotFound, ...).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the conductor raised a *Exists exception (ServiceBinaryExists, ...).
	ErrConflict = errors.New("already exists")
	// ErrUnexpectedState: Instance.save found another task/vm state than expected
	// (UnexpectedTaskStateError, UnexpectedDeletingTaskStateError, UnexpectedVMStateError):
	// someone else took the instance over; stop without touching task_state.
	ErrUnexpectedState = errors.New("unexpected instance state")
	// ErrInstanceDeleting: the unexpected state was "deleting" (UnexpectedDeletingTaskStateError).
	ErrInstanceDeleting = errors.New("instance is being deleted")
	// ErrBadReply: the conductor's answer does not have the shape nova defines.
	ErrBadReply = errors.New("malformed conductor reply")
	// ErrNoNamespacedCaller: Ping needs a NamespacedCaller and none was given.
	ErrNoNamespacedCaller = errors.New("caller cannot send namespaced calls")
	// ErrNoTaskCaster: BuildInstances needs a TaskCaster and the Caller is not one.
	ErrNoTaskCaster = errors.New("caller cannot cast to the compute_task API")
	// ErrUnknownObject: the object class is not in the Zed registry, so no manifest exists.
	ErrUnknownObject = errors.New("object class unknown to the Zed registry")
)

// Client calls nova-conductor's object API.
type Client struct {
	c            Caller
	nc           NamespacedCaller
	tc           TaskCaster
	log          *slog.Logger
	pingTimeout  time.Duration
	pingAttempts int
	longTimeout  time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithNamespacedCaller sets the caller used for the baseapi ping, when the Caller
// given to New does not implement NamespacedCaller itself.
func WithNamespacedCaller(nc NamespacedCaller) Option { return func(c *Client) { c.nc = nc } }

// WithPingSchedule overrides nova's readiness schedule: attempts pings of timeout each,
// then pings of later each until one answers (nova: 10 × 10 s, then rpc_response_timeout 60 s).
func WithPingSchedule(attempts int, timeout, later time.Duration) Option {
	return func(c *Client) { c.pingAttempts, c.pingTimeout, c.longTimeout = attempts, timeout, later }
}

// New returns a client sending through c. If c also implements NamespacedCaller it is
// used for Ping.
func New(c Caller, opts ...Option) *Client {
	cl := &Client{c: c, log: slog.Default(), pingTimeout: 10 * time.Second, pingAttempts: 10, longTimeout: 60 * time.Second}
	if nc, ok := c.(NamespacedCaller); ok {
		cl.nc = nc
	}
	if tc, ok := c.(TaskCaster); ok {
		cl.tc = tc
	}
	for _, o := range opts {
		o(cl)
	}
	return cl
}

// ClassAction calls a remotable classmethod: object_class_action_versions with
// objName's Zed manifest as object_versions. args are the positional arguments after
// the context, kwargs the keyword arguments (either may be nil); *objects.Object values
// inside them encode as primitives. The raw result is returned (an object primitive,
// a number, null ...).
func (c *Client) ClassAction(ctx context.Context, rctx map[string]any, objName, objMethod string, args []any, kwargs map[string]any) (json.RawMessage, error) {
	manifest, ok := objects.Manifest(objName)
	if !ok {
		return nil, fmt.Errorf("%s.%s: %w", objName, objMethod, ErrUnknownObject)
	}
	res, err := c.c.Call(ctx, rctx, "object_class_action_versions", map[string]any{
		"objname":         objName,
		"objmethod":       objMethod,
		"object_versions": manifest,
		"args":            nonNilArgs(args),
		"kwargs":          nonNilKwargs(kwargs),
	})
	if err != nil {
		return nil, fmt.Errorf("conductor %s.%s: %w", objName, objMethod, classify(err))
	}
	return res, nil
}

// ObjectAction calls a remotable method on obj: object_action with obj's primitive
// (its changes included). The reply [updates, result] is applied as oslo's remotable
// wrapper does: every returned field replaces the local one, then the changes become
// exactly updates["obj_what_changed"]. On any error obj is left untouched.
func (c *Client) ObjectAction(ctx context.Context, rctx map[string]any, obj *objects.Object, method string, args []any, kwargs map[string]any) (json.RawMessage, error) {
	res, err := c.c.Call(ctx, rctx, "object_action", map[string]any{
		"objinst":   obj,
		"objmethod": method,
		"args":      nonNilArgs(args),
		"kwargs":    nonNilKwargs(kwargs),
	})
	if err != nil {
		return nil, fmt.Errorf("conductor %s.%s: %w", obj.Name, method, classify(err))
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(res, &pair); err != nil || len(pair) != 2 {
		return nil, fmt.Errorf("conductor %s.%s: %w: want [updates, result], got %.200s", obj.Name, method, ErrBadReply, res)
	}
	var updates map[string]json.RawMessage
	if err := json.Unmarshal(pair[0], &updates); err != nil || updates == nil {
		return nil, fmt.Errorf("conductor %s.%s: %w: updates are not an object", obj.Name, method, ErrBadReply)
	}
	var changed []string
	if raw, ok := updates["obj_what_changed"]; ok {
		if err := json.Unmarshal(raw, &changed); err != nil {
			return nil, fmt.Errorf("conductor %s.%s: %w: obj_what_changed is not a list of strings", obj.Name, method, ErrBadReply)
		}
	}
	if obj.Data == nil {
		obj.Data = map[string]json.RawMessage{}
	}
	for k, v := range updates {
		if k == "obj_what_changed" {
			continue
		}
		obj.Data[k] = v
	}
	obj.Changes = changed
	return pair[1], nil
}

// Backport asks the conductor to downgrade obj to the versions this agent implements
// (object_backport_versions with obj's Zed manifest), as NovaObjectSerializer does for an
// incoming object newer than its classes.
func (c *Client) Backport(ctx context.Context, rctx map[string]any, obj *objects.Object) (*objects.Object, error) {
	manifest, ok := objects.Manifest(obj.Name)
	if !ok {
		return nil, fmt.Errorf("backport %s: %w", obj.Name, ErrUnknownObject)
	}
	res, err := c.c.Call(ctx, rctx, "object_backport_versions", map[string]any{
		"objinst":         obj,
		"object_versions": manifest,
	})
	if err != nil {
		return nil, fmt.Errorf("conductor backport %s %s: %w", obj.Name, obj.Version, classify(err))
	}
	out, err := objects.ObjectFrom(res)
	if err != nil {
		return nil, fmt.Errorf("conductor backport %s: %w: %w", obj.Name, ErrBadReply, err)
	}
	return out, nil
}

// Hydrate decodes an object received as an RPC argument. An object newer than our Zed
// class is backported by the conductor; an unknown class or a compatible version is kept
// exactly as received (unknown fields included).
func (c *Client) Hydrate(ctx context.Context, rctx map[string]any, raw json.RawMessage) (*objects.Object, error) {
	o, err := objects.ObjectFrom(raw)
	if err != nil {
		return nil, fmt.Errorf("hydrate object: %w", err)
	}
	compat, err := objects.CheckVersion(o)
	if err != nil {
		return nil, fmt.Errorf("hydrate %s: %w", o.Name, err)
	}
	if compat != objects.NeedsBackport {
		return o, nil
	}
	c.log.DebugContext(ctx, "backporting newer object", "object", o.Name, "version", o.Version)
	return c.Backport(ctx, rctx, o)
}

// pingArg is the fixed argument of nova's BaseAPI.ping.
const pingArg = "1.21 GigaWatts"

// Ping sends one baseapi ping (namespace "baseapi", version 1.0) and checks the answer
// {"service": "conductor", "arg": "1.21 GigaWatts"}. The ctx deadline is the timeout.
func (c *Client) Ping(ctx context.Context, rctx map[string]any) error {
	if c.nc == nil {
		return fmt.Errorf("ping conductor: %w", ErrNoNamespacedCaller)
	}
	res, err := c.nc.CallNamespaced(ctx, rctx, "baseapi", "1.0", "ping", map[string]any{"arg": pingArg})
	if err != nil {
		return fmt.Errorf("ping conductor: %w", classify(err))
	}
	var reply struct {
		Service string `json:"service"`
		Arg     string `json:"arg"`
	}
	if err := json.Unmarshal(res, &reply); err != nil || reply.Arg != pingArg {
		return fmt.Errorf("ping conductor: %w: %.200s", ErrBadReply, res)
	}
	return nil
}

// WaitReady pings until the conductor answers, like nova's conductor API
// wait_until_ready: attempts that time out are retried (the first ones with the short
// ping timeout, then with the long one); any other error, or ctx ending, stops it.
func (c *Client) WaitReady(ctx context.Context, rctx map[string]any) error {
	for attempt := 1; ; attempt++ {
		timeout := c.longTimeout
		if attempt <= c.pingAttempts {
			timeout = c.pingTimeout
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := c.Ping(actx, rctx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for conductor: %w", errors.Join(ctx.Err(), err))
		}
		if !timedOut {
			return fmt.Errorf("wait for conductor: %w", err)
		}
		c.log.WarnContext(ctx, "conductor did not answer ping yet", "attempt", attempt, "timeout", timeout)
	}
}

func nonNilArgs(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func nonNilKwargs(k map[string]any) map[string]any {
	if k == nil {
		return map[string]any{}
	}
	return k
}

// ComputeTaskVersion is the version nova-compute (Zed) casts build_instances with: 1.19
// carries request_spec and host_lists.
const ComputeTaskVersion = "1.19"

// BuildInstances is ComputeTaskAPI.build_instances, the cast with which a compute hands a
// build that failed on it back to the conductor to try the next alternate host. args are
// the keyword arguments of version 1.19 (instances, image, filter_properties,
// admin_password, injected_files, requested_networks, security_groups, request_spec,
// host_lists).
func (c *Client) BuildInstances(ctx context.Context, rctx map[string]any, args map[string]any) error {
	if c.tc == nil {
		return ErrNoTaskCaster
	}
	if err := c.tc.CastNamespaced(ctx, rctx, "compute_task", ComputeTaskVersion, "build_instances", args); err != nil {
		return fmt.Errorf("cast build_instances to the conductor: %w", err)
	}
	return nil
}
