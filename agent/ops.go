package agent

// instanceOps maps compute RPC methods to their implementations. build_and_run_instance is
// always served: without a lifecycle it fails the build cleanly instead of leaving it in BUILD.
func (m *Manager) instanceOps() map[string]OpHandler {
	return map[string]OpHandler{
		"build_and_run_instance": m.opBuildAndRunInstance,
	}
}
