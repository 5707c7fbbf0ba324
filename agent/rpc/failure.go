package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Exception modules and classes this package sends on its own behalf.
const (
	// ModuleBuiltins is Python's module of built-in exceptions. Every oslo caller re-creates
	// exceptions from it (no allow-list applies), so it is the safe home for errors that have no
	// better class.
	ModuleBuiltins = "builtins"
	// ModuleDispatcher is where oslo's NoSuchMethod and UnsupportedVersion live.
	ModuleDispatcher = "oslo_messaging.rpc.dispatcher"
	// ModuleNova is nova's exception module, the only one nova callers re-create as the real class
	// (nova/rpc.py ALLOWED_EXMODS); anything else reaches them as oslo_messaging.RemoteError.
	ModuleNova = "nova.exception"
)

// Failure is a Python exception as oslo serialises it into a reply's "failure" string
// (oslo_messaging/_drivers/common.py serialize_remote_exception). Handlers return a *Failure,
// possibly wrapped, to choose the exception class the caller will see, e.g.
//
//	&rpc.Failure{Module: rpc.ModuleNova, Class: "InstanceNotFound",
//		Message: "Instance 3c1a could not be found.",
//		Kwargs: map[string]any{"instance_id": "3c1a", "code": 404}}
//
// A failure received in a reply to Conn.Call is returned as a *Failure too (use errors.As).
type Failure struct {
	Module  string
	Class   string
	Message string
	// Args are the exception's positional args; empty means [Message], which is what every
	// single-argument Python exception (and NovaException) carries.
	Args []any
	// Kwargs are the exception's keyword args; nova callers pass them to the class constructor,
	// so they must be names the class accepts (NovaException subclasses take their format keys
	// and "code").
	Kwargs map[string]any
	// Traceback is the Python traceback, one string per line; empty means a short note that the
	// exception was raised by Go code.
	Traceback []string
}

// Error implements error in the form Python prints the last traceback line.
func (f *Failure) Error() string {
	if f.Module == "" || f.Module == ModuleBuiltins {
		return fmt.Sprintf("%s: %s", f.Class, f.Message)
	}
	return fmt.Sprintf("%s.%s: %s", f.Module, f.Class, f.Message)
}

// NoSuchMethod is the failure oslo's dispatcher sends when a compatible endpoint lacks the method.
func NoSuchMethod(method string) *Failure {
	msg := "Endpoint does not support RPC method " + method
	return &Failure{Module: ModuleDispatcher, Class: "NoSuchMethod", Message: msg, Args: []any{msg}, Kwargs: map[string]any{}}
}

// UnsupportedVersion is the failure oslo's dispatcher sends when no endpoint serves the
// namespace and version. method "" gives the form without "Attempted method".
func UnsupportedVersion(version, method string) *Failure {
	msg := "Endpoint does not support RPC version " + version
	if method != "" {
		msg = fmt.Sprintf("%s. Attempted method: %s", msg, method)
	}
	return &Failure{Module: ModuleDispatcher, Class: "UnsupportedVersion", Message: msg, Args: []any{msg}, Kwargs: map[string]any{}}
}

// failureFromError turns any handler error into the failure sent on the wire. A *Failure anywhere
// in the chain is used as is. Anything else becomes builtins.RuntimeError: every Python caller
// can re-create it without an allow-list (nova, neutron and oslo tools alike), it carries the
// message into the caller's logs and API faults, and it claims no nova semantics (a nova.exception
// class would make callers branch on a meaning the Go error never had; TypeError/ValueError would
// make nova-api answer 400 for what is a server-side fault).
func failureFromError(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	msg := err.Error()
	return &Failure{Module: ModuleBuiltins, Class: "RuntimeError", Message: msg, Args: []any{msg}, Kwargs: map[string]any{}}
}

// encode returns the JSON string oslo puts in "failure".
func (f *Failure) encode() (string, error) {
	args := f.Args
	if len(args) == 0 {
		args = []any{f.Message}
	}
	kwargs := f.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	tb := f.Traceback
	if len(tb) == 0 {
		last := f.Class + ": " + f.Message + "\n"
		if f.Module != ModuleBuiltins && f.Module != "" {
			last = f.Module + "." + last
		}
		tb = []string{
			"Traceback (most recent call last):\n",
			"  (raised by nova-container-agent, a Go implementation: no Python frames)\n",
			last,
		}
	}
	b, err := pyDumps(object{
		{"class", f.Class}, {"module", f.Module}, {"message", f.Message},
		{"tb", tb}, {"args", args}, {"kwargs", kwargs},
	})
	if err != nil {
		return "", fmt.Errorf("encode failure %s.%s: %w", f.Module, f.Class, err)
	}
	return string(b), nil
}

// decodeFailure parses the "failure" string of a reply; missing keys are tolerated as oslo does.
func decodeFailure(s string) (*Failure, error) {
	var raw struct {
		Class   *string        `json:"class"`
		Module  *string        `json:"module"`
		Message *string        `json:"message"`
		TB      []string       `json:"tb"`
		Args    []any          `json:"args"`
		Kwargs  map[string]any `json:"kwargs"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("decode failure %.80q: %w: %w", s, ErrBadMessage, err)
	}
	f := &Failure{Args: raw.Args, Kwargs: raw.Kwargs, Traceback: raw.TB}
	if raw.Class != nil {
		f.Class = *raw.Class
	}
	if raw.Module != nil {
		f.Module = *raw.Module
	}
	if raw.Message != nil {
		f.Message = *raw.Message
	}
	return f, nil
}

// pyException is a built-in Python exception as oslo would serialise it.
func pyException(class, msg string) *Failure {
	return &Failure{Module: ModuleBuiltins, Class: class, Message: msg, Args: []any{msg}, Kwargs: map[string]any{}}
}
