// Package netnstest creates named network namespaces for integration tests that need root.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// New creates the named (bind-mounted) network namespace name, replacing a leftover of an
// earlier run, and removes it when t ends. It returns the namespace's path. The creating thread
// is locked and switched back, since netns.NewNamed enters the new namespace.
func New(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this integration test needs root (network namespaces and veth pairs)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	_ = netns.DeleteNamed(name)
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to original netns: %v", err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	return "/var/run/netns/" + name
}
