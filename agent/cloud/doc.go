// Package cloud holds the OpenStack REST clients a compute host needs —
// keystone sessions, placement, neutron and glance — built on gophercloud
// v2's provider client and speaking each API the way nova-compute Zed does:
// the same microversions per call (placement), the same request bodies
// (neutron port create and bind), the service token beside a user's token.
//
// Errors wrap sentinels (ErrNotFound, ErrConflict, ErrGenerationConflict,
// ErrInventoryInUse, ...) and an *HTTPError with the status, the API's error
// code and the request id. Adapters log nothing; callers decide.
//
// Example:
//
//	sess, err := cloud.NewSession(ctx, cfg.Placement.KeystoneAuth)
//	if err != nil {
//		return fmt.Errorf("placement credentials: %w", err)
//	}
//	pl, err := cloud.NewPlacement(sess, "")
//	rp, err := pl.EnsureProvider(ctx, nodeUUID, cfg.Default.Host)
//	gen, err := pl.UpdateInventories(ctx, rp.UUID, func(cur cloud.Inventories) cloud.Inventories {
//		return wantInventories(cur) // keeps placement's ratios where nova would
//	})
//
// Calls made on behalf of a user carry the user's token in the context:
//
//	ctx = cloud.WithRequestID(cloud.WithUserToken(ctx, rpcCtx.AuthToken), rpcCtx.GlobalRequestID)
//	port, err := nt.CreatePort(ctx, cloud.PortCreate{NetworkID: net, DeviceID: inst, AdminStateUp: true, TenantID: project})
//
// The cloudtest subpackage has stateful fakes of keystone and placement and
// the placement conformance suite the fake and the real service both pass.
package cloud
