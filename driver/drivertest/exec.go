package drivertest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/driver"
)

// The fake runs one command, chpasswd, against the container's files (the only command the
// driver execs): it reads "user:password" lines from stdin and rewrites the user's
// /etc/shadow hash as "$fake$<sha256>", failing like chpasswd when the user is not in
// /etc/passwd. Any other command fails to start, as a missing binary does in dockerd.

type fakeExec struct {
	ctr     *fakeCtr
	cmd     []string
	started bool
	running bool
	exit    int
}

// ShadowHash is the hash the fake's chpasswd writes for password.
func ShadowHash(password string) string {
	sum := sha256.Sum256([]byte(password))
	return "$fake$" + hex.EncodeToString(sum[:])
}

// ExecCreate implements driver.ExecAPI.
func (f *Fake) ExecCreate(_ context.Context, ref string, o client.ExecCreateOptions) (client.ExecCreateResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return client.ExecCreateResult{}, err
	}
	if !c.state.Running {
		return client.ExecCreateResult{}, conflict("Container %s is not running", c.id)
	}
	if c.state.Paused {
		return client.ExecCreateResult{}, conflict("Container %s is paused, unpause the container before exec", c.id)
	}
	if len(o.Cmd) == 0 {
		return client.ExecCreateResult{}, invalid("No exec command specified")
	}
	if f.execs == nil {
		f.execs = map[string]*fakeExec{}
	}
	f.nextID++
	id := fmt.Sprintf("exec%060d", f.nextID)
	f.execs[id] = &fakeExec{ctr: c, cmd: o.Cmd}
	return client.ExecCreateResult{ID: id}, nil
}

// ExecAttach implements driver.ExecAPI: it starts the command with its stdin and output on
// the returned connection.
func (f *Fake) ExecAttach(_ context.Context, id string, _ client.ExecAttachOptions) (client.ExecAttachResult, error) {
	f.mu.Lock()
	e, ok := f.execs[id]
	if !ok {
		f.mu.Unlock()
		return client.ExecAttachResult{}, notFound("No such exec instance: %s", id)
	}
	if e.started {
		f.mu.Unlock()
		return client.ExecAttachResult{}, conflict("Exec %s has already run", id)
	}
	e.started, e.running = true, true
	f.mu.Unlock()

	ours, theirs := newDuplex()
	go func() {
		in, _ := io.ReadAll(ours)
		f.mu.Lock()
		out, code := f.runLocked(e, string(in))
		e.running, e.exit = false, code
		f.mu.Unlock()
		_, _ = ours.Write([]byte(out))
		ours.Close()
	}()
	return client.ExecAttachResult{HijackedResponse: client.NewHijackedResponse(theirs, "")}, nil
}

// ExecInspect implements driver.ExecAPI.
func (f *Fake) ExecInspect(_ context.Context, id string, _ client.ExecInspectOptions) (client.ExecInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.execs[id]
	if !ok {
		return client.ExecInspectResult{}, notFound("No such exec instance: %s", id)
	}
	return client.ExecInspectResult{ID: id, ContainerID: e.ctr.id, Running: e.running, ExitCode: e.exit}, nil
}

func (f *Fake) runLocked(e *fakeExec, stdin string) (string, int) {
	if e.cmd[0] != "chpasswd" {
		return fmt.Sprintf("OCI runtime exec failed: exec: %q: executable file not found in $PATH\n", e.cmd[0]), 126
	}
	passwd, ok := e.ctr.files["/etc/passwd"]
	shadow, ok2 := e.ctr.files["/etc/shadow"]
	if !ok || !ok2 {
		return "chpasswd: cannot open /etc/shadow\n", 1
	}
	users := map[string]bool{}
	for _, l := range strings.Split(string(passwd.data), "\n") {
		if u, _, ok := strings.Cut(l, ":"); ok {
			users[u] = true
		}
	}
	lines := strings.Split(string(shadow.data), "\n")
	sc := bufio.NewScanner(strings.NewReader(stdin))
	for sc.Scan() {
		user, pass, ok := strings.Cut(sc.Text(), ":")
		if !ok || !users[user] {
			return fmt.Sprintf("chpasswd: (user %s) pam_chauthtok() failed, error:\nAuthentication token manipulation error\n", user), 1
		}
		for i, l := range lines {
			f := strings.Split(l, ":")
			if len(f) > 1 && f[0] == user {
				f[1] = ShadowHash(pass)
				lines[i] = strings.Join(f, ":")
			}
		}
	}
	shadow.data = []byte(strings.Join(lines, "\n"))
	shadow.hdr.Size = int64(len(shadow.data))
	return "", 0
}

// duplex is one end of an in-memory connection that, like a TCP connection, can close its
// writing half alone (HijackedResponse.CloseWrite), so the other end sees EOF on stdin and
// still sends the command's output back.
type duplex struct {
	r    *io.PipeReader
	w    *io.PipeWriter
	once sync.Once
}

func newDuplex() (*duplex, *duplex) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &duplex{r: ar, w: aw}, &duplex{r: br, w: bw}
}

func (d *duplex) Read(p []byte) (int, error)  { return d.r.Read(p) }
func (d *duplex) Write(p []byte) (int, error) { return d.w.Write(p) }
func (d *duplex) CloseWrite() error           { return d.w.Close() }
func (d *duplex) Close() error {
	d.once.Do(func() { d.w.Close(); d.r.Close() })
	return nil
}
func (d *duplex) LocalAddr() net.Addr              { return fakeAddr{} }
func (d *duplex) RemoteAddr() net.Addr             { return fakeAddr{} }
func (d *duplex) SetDeadline(time.Time) error      { return nil }
func (d *duplex) SetReadDeadline(time.Time) error  { return nil }
func (d *duplex) SetWriteDeadline(time.Time) error { return nil }

type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake-docker" }

var _ driver.ExecAPI = (*Fake)(nil)

// ReadFile returns a file of a container as the guest would read it, for tests that check
// what an operation wrote inside.
func (f *Fake) ReadFile(ref, name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return nil, err
	}
	e, ok := c.files[path.Clean("/"+name)]
	if !ok {
		return nil, notFound("Could not find the file %s in container %s", name, c.id)
	}
	return append([]byte(nil), e.data...), nil
}
