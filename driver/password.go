package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// ExecAPI is the part of the Engine API that runs a command in a running
// container. It is separate from DockerAPI because only set_admin_password
// needs it; the real *client.Client and drivertest.Fake satisfy it.
type ExecAPI interface {
	ExecCreate(ctx context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
}

var _ ExecAPI = (*client.Client)(nil)

// ErrPasswordRefused: the guest's chpasswd did not accept the change (no
// such user, no chpasswd in the image, a PAM policy).
var ErrPasswordRefused = errors.New("the guest refused the password change")

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// SetPassword sets user's password inside the running guest the way a
// guest agent does (qemu-guest-agent's guest-set-user-password runs the
// guest's own chpasswd): the guest hashes it with its own settings, and the
// password travels on chpasswd's stdin, never on a command line. The guest
// must be running.
func (d *Driver) SetPassword(ctx context.Context, id, user, password string) error {
	if err := spec.ValidateUUID(id); err != nil {
		return err
	}
	if !userName.MatchString(user) {
		return fmt.Errorf("set password of %s: user name %q: %w", id, user, spec.ErrInvalid)
	}
	if password == "" || strings.ContainsAny(password, "\n\r\x00") {
		return fmt.Errorf("set password of %s: the password is empty or holds a line break or NUL: %w", id, spec.ErrInvalid)
	}
	ex, ok := d.api.(ExecAPI)
	if !ok {
		return fmt.Errorf("set password of %s: the Docker API given cannot exec: %w", id, ErrUnsupported)
	}
	defer d.lock(id)()
	name, _ := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", id, err)
	}
	if !running(c) || c.State.Paused {
		return fmt.Errorf("set password of %s: %w", id, ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cr, err := ex.ExecCreate(ctx, name, client.ExecCreateOptions{User: "root", Cmd: []string{"chpasswd"},
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fmt.Errorf("set password of %s: exec chpasswd: %w", id, err)
	}
	att, err := ex.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("set password of %s: attach chpasswd: %w", id, err)
	}
	defer att.Close()
	if _, err := io.WriteString(att.Conn, user+":"+password+"\n"); err != nil {
		return fmt.Errorf("set password of %s: write to chpasswd: %w", id, err)
	}
	if err := att.CloseWrite(); err != nil {
		return fmt.Errorf("set password of %s: close chpasswd's stdin: %w", id, err)
	}
	// The output ends when chpasswd exits; it is kept for the error message only.
	out, _ := io.ReadAll(io.LimitReader(att.Reader, 4096))
	var res client.ExecInspectResult
	for {
		if res, err = ex.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{}); err != nil {
			return fmt.Errorf("set password of %s: inspect chpasswd: %w", id, err)
		}
		if !res.Running {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set password of %s: chpasswd did not finish: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("set password of %s for %s: chpasswd exited %d: %s: %w", id, user, res.ExitCode, printable(out), ErrPasswordRefused)
	}
	return nil
}

// printable drops the stream headers and control bytes of a multiplexed exec output.
func printable(b []byte) string {
	b = bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f) {
			return r
		}
		return -1
	}, b)
	return strings.TrimSpace(string(b))
}
