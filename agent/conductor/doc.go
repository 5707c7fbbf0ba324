// Package conductor is nova-compute's client for nova-conductor's object API: every
// remotable method of a nova object a compute calls becomes one RPC call to topic
// "conductor" (exchange nova, ConductorAPI 3.0), either object_class_action_versions
// (class methods, with the object_versions manifest) or object_action (instance methods,
// whose reply updates the local object), plus the baseapi readiness ping.
//
// The package is transport-agnostic: it needs only a Caller (agent/rpc provides one).
// Request contexts are the oslo to_dict() maps the transport flattens into _context_*
// keys: AdminContext builds the one service work uses; an instance action must reuse
// the incoming request's context unchanged, or the conductor cannot find the instance
// action its events belong to (InstanceActionNotFound).
//
// Example (registration and heartbeat):
//
//	c := conductor.New(rpcClient)
//	rctx := conductor.AdminContext(time.Now(), conductor.NewRequestID())
//	if err := c.WaitReady(ctx, rctx); err != nil { ... }
//	svc, err := c.ServiceGetByHostAndBinary(ctx, rctx, host, "nova-compute")
//	if errors.Is(err, conductor.ErrNotFound) {
//		svc = objects.NewService(host, "nova-compute", "compute")
//		err = c.ServiceCreate(ctx, rctx, svc)
//	}
//	...
//	err = c.ServiceHeartbeat(ctx, conductor.AdminContext(time.Now(), conductor.NewRequestID()), svc)
//
// Remote failures come back from the Caller as errors implementing RemoteError
// (ExceptionClass() string); helpers additionally wrap well-known nova exceptions in
// ErrNotFound, ErrConflict and ErrUnexpectedState so callers can use errors.Is.
package conductor
