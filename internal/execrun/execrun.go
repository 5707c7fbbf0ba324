// Package execrun is the one place that runs external commands (ovs-ofctl, mkfs.ext4, sfdisk,
// qemu-img): packages declare their own narrow Runner interface and take Exec as the real one,
// so tests can assert the exact argv and stdin without running anything.
package execrun

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Exec runs commands with os/exec.
type Exec struct{}

// Run runs name with args, feeding stdin (nil for none), and returns stdout; stderr is folded
// into the error so that a failing tool says why.
func (Exec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
