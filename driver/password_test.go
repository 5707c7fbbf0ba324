package driver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

func shadowLine(t *testing.T, e *env, user string) string {
	t.Helper()
	b, err := e.f.ReadFile("nca-"+uuid1, "/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, user+":") {
			return l
		}
	}
	t.Fatalf("no %s in /etc/shadow:\n%s", user, b)
	return ""
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.d.Spawn(ctx, inst(uuid1), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.d.SetPassword(ctx, uuid1, "root", "s3cret: with spaces"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if got, want := shadowLine(t, e, "root"), "root:"+drivertest.ShadowHash("s3cret: with spaces")+":19700:0:99999:7:::"; got != want {
		t.Errorf("shadow line %q, want %q", got, want)
	}
	if got := shadowLine(t, e, "debian"); got != "debian:!:19700:0:99999:7:::" {
		t.Errorf("another user's line changed: %q", got)
	}

	if err := e.d.SetPassword(ctx, uuid1, "nobody-here", "x"); !errors.Is(err, driver.ErrPasswordRefused) || !strings.Contains(err.Error(), "Authentication token manipulation error") {
		t.Errorf("unknown user: %v", err)
	}
	for _, bad := range []struct{ user, pass string }{{"root", "two\nlines"}, {"root", ""}, {"root:x", "p"}, {"../etc", "p"}} {
		if err := e.d.SetPassword(ctx, uuid1, bad.user, bad.pass); !errors.Is(err, spec.ErrInvalid) {
			t.Errorf("SetPassword(%q, %q) = %v, want ErrInvalid", bad.user, bad.pass, err)
		}
	}
	if err := e.d.Pause(ctx, uuid1); err != nil {
		t.Fatal(err)
	}
	if err := e.d.SetPassword(ctx, uuid1, "root", "p"); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("paused guest: %v", err)
	}
	if err := e.d.Unpause(ctx, uuid1); err != nil {
		t.Fatal(err)
	}
	if err := e.d.PowerOff(ctx, uuid1, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.d.SetPassword(ctx, uuid1, "root", "p"); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("stopped guest: %v", err)
	}
	if err := e.d.SetPassword(ctx, uuid2, "root", "p"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("unknown instance: %v", err)
	}
}
