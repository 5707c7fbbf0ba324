//go:build integration

package driver_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/driver/vif"
)

// recordingInit replaces the image's /sbin/init: before anything else runs as PID 1 it appends
// what the network looks like (interfaces, IPv4 routes, addresses) to a file in the guest's
// writable layer, then becomes systemd. nova-docker's failure mode — interfaces that appear
// after init has started and configured nothing — shows up here as a boot record without eth0.
const recordingInit = `#!/bin/sh
{
	echo "=== boot $(cat /proc/uptime)"
	cat /proc/net/dev
	echo "--- routes"
	cat /proc/net/route
	echo "--- addresses"
	hostname -I
} >>/var/tmp/first-network 2>&1
exec /lib/systemd/systemd "$@"
`

// netFirstImage derives an image whose PID 1 records the network first; it is removed at the end.
func netFirstImage(t *testing.T) string {
	t.Helper()
	ref := "nca-test/netfirst:" + uuid.NewString()[:8]
	name := "nca-test-netfirst-build-" + uuid.NewString()[:8]
	script := "rm -f /sbin/init && cat >/sbin/init <<'EOF'\n" + recordingInit + "EOF\nchmod 0755 /sbin/init"
	for _, argv := range [][]string{
		{"run", "--name", name, "--entrypoint", "/bin/sh", "--network", "none", systemdImage, "-c", script},
		{"commit", "--change", `ENTRYPOINT ["/sbin/init"]`, name, ref},
		{"rm", name},
	} {
		if out, err := exec.Command("docker", argv...).CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v: %s", argv[0], err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
	return ref
}

// bootRecords splits the record file into one entry per boot.
func bootRecords(s string) []string {
	var out []string
	for _, b := range strings.Split(s, "=== boot ")[1:] {
		out = append(out, b)
	}
	return out
}

// The guest's PID 1 must find its interface up, addressed and routed: the sandbox is plugged
// before the instance container starts, on the first boot and on every restart after it.
func TestNetworkConfiguredBeforeInit(t *testing.T) {
	e := newReal(t)
	ctx := context.Background()
	img := netFirstImage(t)
	id := uuid.NewString()
	name := "nca-test-drv-" + id

	plan, err := vif.NewPlan(id, "fa:16:3e:99:00:05", 1450, 0, []vif.Subnet{{
		CIDR: netip.MustParsePrefix("10.99.0.0/24"), IP: netip.MustParseAddr("10.99.0.5"),
		Gateway: netip.MustParseAddr("10.99.0.1"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	pl := vif.NewPlumber()
	t.Cleanup(func() { _ = pl.Unplug(context.Background(), plan.PortID) })
	plugs := 0
	plug := func(ctx context.Context, netns string) error {
		plugs++
		// A slow plug must still finish before init: nothing may start the guest meanwhile.
		time.Sleep(time.Second)
		_, err := pl.Plug(ctx, netns, plan)
		return err
	}

	in := realInst(id, 1, 512)
	in.Image = img
	if err := e.d.Spawn(ctx, in, plug); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	waitRunning(t, name)
	if err := e.d.Reboot(ctx, id, true, 10*time.Second, plug); err != nil {
		t.Fatalf("hard reboot: %v", err)
	}
	waitRunning(t, name)

	out, err := dexec(t, name, 10*time.Second, "cat", "/var/tmp/first-network")
	if err != nil {
		t.Fatalf("read the boot record: %v: %s", err, out)
	}
	boots := bootRecords(out)
	if len(boots) != 2 {
		t.Fatalf("%d boot records, want 2 (spawn, reboot):\n%s", len(boots), out)
	}
	for i, b := range boots {
		if !strings.Contains(b, "eth0:") {
			t.Errorf("boot %d: PID 1 started without eth0:\n%s", i+1, b)
		}
		// /proc/net/route: a default route (destination 00000000) via 10.99.0.1 (0100630A).
		if !strings.Contains(b, "eth0\t00000000\t0100630A") {
			t.Errorf("boot %d: no default route via 10.99.0.1 when PID 1 started:\n%s", i+1, b)
		}
		if !strings.Contains(b, "10.99.0.5") {
			t.Errorf("boot %d: 10.99.0.5 not configured when PID 1 started:\n%s", i+1, b)
		}
	}
	if plugs != 1 {
		t.Errorf("plugged %d times; the reboot kept the sandbox, so once is right", plugs)
	}
	t.Logf("boot record of the first boot:\n%s", boots[0])
}
