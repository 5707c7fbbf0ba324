package neutron

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidConfig: the configuration cannot work; nothing was started.
	ErrInvalidConfig = errors.New("invalid neutron agent configuration")
	// ErrNotRunning: Resync was called while no device loop runs (compat mode, before Run or
	// after it returned).
	ErrNotRunning = errors.New("neutron agent not running")
	// ErrPortNotFound: the port is not (or no longer) on the integration bridge.
	ErrPortNotFound = errors.New("port not on the integration bridge")
	// ErrNotBound: neutron does not bind the port to this host (unknown port, binding failed,
	// no active binding here, or a segment this host cannot provide); the port was put on the
	// dead VLAN.
	ErrNotBound = errors.New("port not bound to this host")
	// ErrAdminDown: the port's admin_state_up is false; it was put on the dead VLAN and
	// reported down.
	ErrAdminDown = errors.New("port administratively down")
	// ErrBadMessage: a notification or reply from neutron-server could not be decoded.
	ErrBadMessage = errors.New("malformed message from neutron-server")
)
