package ovs

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: a bridge, port or interface does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object exists but belongs to someone else or to another bridge.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the caller's input is malformed; nothing was changed.
	ErrInvalid = errors.New("invalid argument")
	// ErrExhausted: no local VLAN is left.
	ErrExhausted = errors.New("exhausted")
)
