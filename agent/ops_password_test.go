package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

func guestWithShadow(t *testing.T) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, data := range map[string]string{
		"sbin/init":    "#!systemd",
		"etc/passwd":   "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":   "root:*:19700:0:99999:7:::\n",
		"etc/hostname": "image\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(data))
	}
	_ = tw.Close()
	return bytes.NewReader(b.Bytes())
}

func TestSetAdminPassword(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	m := h.manager(t)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	df := drivertest.NewFake()
	d, err := driver.New(ctx, df, driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		driver.WithCgroups(driver.HostCgroupsV1{Root: t.TempDir()}), driver.WithStateDir(t.TempDir()), driver.WithProcRoot(t.TempDir()),
		driver.WithLXCFSCheck(func(string) error { return errors.New("not mounted") }), driver.WithArch("amd64"))
	if err != nil {
		t.Fatal(err)
	}
	m.SetLifecycle(&Lifecycle{Driver: d, Plugger: noPlug{}, Bridge: "br-int"})
	if _, err := df.ImageImport(ctx, client.ImageImportSource{Source: guestWithShadow(t), SourceName: "-"}, "nca-test/guest:1", client.ImageImportOptions{}); err != nil {
		t.Fatal(err)
	}
	_, inst := recordedBuild(t)
	uuid := objString(t, inst, "uuid")
	if err := d.Spawn(ctx, spec.Instance{UUID: uuid, Hostname: "vm1", Image: "nca-test/guest:1",
		Flavor: spec.Flavor{Name: "m1.tiny", VCPUs: 1, MemoryMB: 64, RootGB: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	disp := rpc.NewDispatcher(m.Endpoints()...)
	call := func(pass string) error {
		t.Helper()
		row := h.cond.Instance(uuid)
		if row == nil {
			row = inst
		}
		if err := row.Set("task_state", "updating_password"); err != nil {
			t.Fatal(err)
		}
		h.cond.AddInstance(row)
		row.ResetChanges()
		h.cond.AddAction(uuid, "req-pw", "p1")
		raw, _ := json.Marshal(row)
		np, _ := json.Marshal(pass)
		_, err := disp.Handle(ctx, &rpc.Request{Method: "set_admin_password", Version: "6.0",
			Args: map[string]json.RawMessage{"instance": raw, "new_pass": np}, Context: userContext("req-pw")})
		return err
	}
	shadow := func() string {
		b, err := df.ReadFile("nca-"+uuid, "/etc/shadow")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := call("n3w-pass"); err != nil {
		t.Fatalf("set_admin_password: %v", err)
	}
	if got := shadow(); !strings.HasPrefix(got, "root:"+drivertest.ShadowHash("n3w-pass")+":") {
		t.Errorf("/etc/shadow after set_admin_password: %q", got)
	}
	if row := h.cond.Instance(uuid); !row.IsNull("task_state") {
		t.Errorf("task_state %s after success, want None", row.Data["task_state"])
	}

	if err := d.PowerOff(ctx, uuid, 0); err != nil {
		t.Fatal(err)
	}
	err = call("other")
	var f *rpc.Failure
	if !errors.As(err, &f) || f.Class != "InstancePasswordSetFailed" || !strings.Contains(f.Message, "is not running") || strings.Contains(f.Message, "other") {
		t.Errorf("stopped instance: %v", err)
	}
	if row := h.cond.Instance(uuid); !row.IsNull("task_state") {
		t.Errorf("task_state %s after failure, want None", row.Data["task_state"])
	}
}
