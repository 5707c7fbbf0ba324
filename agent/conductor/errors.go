package conductor

import (
	"errors"
	"fmt"
	"strings"
)

// RemoteError is the failure the conductor raised, as the transport reports it: the
// Python exception class name (oslo failure "class", e.g. "ComputeHostNotFound").
// agent/rpc's *Failure satisfies it by having the method ExceptionClass() string.
type RemoteError interface {
	error
	ExceptionClass() string
}

// ExceptionClass returns the remote exception class in err's chain, if any.
func ExceptionClass(err error) (string, bool) {
	var re RemoteError
	if errors.As(err, &re) {
		return re.ExceptionClass(), true
	}
	return "", false
}

// classify adds our sentinel in front of well-known remote exceptions so that callers
// can use errors.Is while errors.As still reaches the RemoteError.
func classify(err error) error {
	class, ok := ExceptionClass(err)
	if !ok {
		return err
	}
	switch {
	case class == "UnexpectedDeletingTaskStateError":
		return fmt.Errorf("%w: %w: %w", ErrUnexpectedState, ErrInstanceDeleting, err)
	case class == "UnexpectedTaskStateError" || class == "UnexpectedVMStateError":
		return fmt.Errorf("%w: %w", ErrUnexpectedState, err)
	case strings.HasSuffix(class, "NotFound"):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case strings.HasSuffix(class, "Exists"):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
