package snapshot

import (
	"context"
	"github.com/nova-container-agent/nova-container-agent/internal/execrun"
)

// Runner runs an external command with stdin and returns its stdout. Tests inject a fake that
// records argv and stdin (the same shape as ovs/flows.Runner, so one implementation serves both).
type Runner interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner = execrun.Exec

var _ Runner = ExecRunner{}
