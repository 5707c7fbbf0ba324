package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
	"github.com/nova-container-agent/nova-container-agent/images/store"
)

// spawnFails is the real driver (on the in-memory Docker) whose Spawn fails the way a
// container runtime refusing the container does.
type spawnFails struct {
	Driver
	err error
}

func (s spawnFails) Spawn(context.Context, spec.Instance, driver.PlugFunc) error { return s.err }

type oneImage struct{ ref string }

func (o oneImage) Ensure(context.Context, string, store.Checksum, store.OpenFunc) (string, error) {
	return o.ref, nil
}

type glanceImage struct{}

func (glanceImage) GetImage(_ context.Context, id string) (*cloud.Image, error) {
	return &cloud.Image{ID: id, Status: "active", DiskFormat: "qcow2", ContainerFormat: "bare",
		Checksum: "9e107d9d372bb6826bd81d3542a419d6"}, nil
}

func (glanceImage) DownloadImage(context.Context, string) (*cloud.ImageData, error) {
	return nil, errors.New("the cached image must be used")
}

// recordedBuild is nova-conductor's build_and_run_instance cast of the recording, with the
// instance asking for no network (the port path is covered by the e2e suites).
func recordedBuild(t *testing.T) (map[string]json.RawMessage, *objects.Object) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "build", "build_and_run_instance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Args map[string]json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(raw), `"fake-1"`, `"nca-1"`)), &msg); err != nil {
		t.Fatal(err)
	}
	msg.Args["requested_networks"] = json.RawMessage(`{"nova_object.name": "NetworkRequestList", "nova_object.namespace": "nova",
		"nova_object.version": "1.1", "nova_object.data": {"objects": [{"nova_object.name": "NetworkRequest",
		"nova_object.namespace": "nova", "nova_object.version": "1.3", "nova_object.data": {"network_id": "none"}}]}}`)
	inst, err := objects.ObjectFrom(msg.Args["instance"])
	if err != nil {
		t.Fatal(err)
	}
	return msg.Args, inst
}

func newBuildEnv(t *testing.T, spawnErr error) (*harness, *Manager) {
	t.Helper()
	ctx := context.Background()
	h := newHarness(t)
	m := h.manager(t)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(ctx, drivertest.NewFake(), driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		driver.WithCgroups(driver.HostCgroupsV1{Root: t.TempDir()}), driver.WithStateDir(t.TempDir()), driver.WithProcRoot(t.TempDir()),
		driver.WithLXCFSCheck(func(string) error { return errors.New("not mounted") }), driver.WithArch("amd64"))
	if err != nil {
		t.Fatal(err)
	}
	m.SetLifecycle(&Lifecycle{Driver: spawnFails{Driver: d, err: spawnErr}, Images: oneImage{"nca-test/guest:1"},
		Glance: glanceImage{}, Neutron: cloudtest.NewNeutron(), Plugger: noPlug{}, Bridge: "br-int"})
	return h, m
}

func runBuild(t *testing.T, h *harness, m *Manager, args map[string]json.RawMessage, inst *objects.Object) string {
	t.Helper()
	uuid := objString(t, inst, "uuid")
	h.cond.AddInstance(inst)
	h.cond.AddAction(uuid, "req-build", "p1")
	req := &rpc.Request{Method: "build_and_run_instance", Version: "6.0", Args: args, Context: userContext("req-build")}
	if _, err := rpc.NewDispatcher(m.Endpoints()...).Handle(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	return uuid
}

// A container the runtime refuses is nova's RescheduledException: with retry information the
// build goes back to the conductor (build_instances, compute_task 1.19) with the remaining
// alternates, after this host gave back its claim; the instance carries no fault yet.
func TestSpawnFailureReschedules(t *testing.T) {
	h, m := newBuildEnv(t, errors.New("Error response from daemon: OCI runtime create failed"))
	args, inst := recordedBuild(t)
	uuid := runBuild(t, h, m, args, inst)

	var cast *struct {
		Instances        []json.RawMessage          `json:"instances"`
		FilterProperties map[string]json.RawMessage `json:"filter_properties"`
		HostLists        [][]json.RawMessage        `json:"host_lists"`
	}
	var keys []string
	for _, r := range h.cond.Requests() {
		if r.Method != "build_instances" {
			continue
		}
		if r.Namespace != "compute_task" || r.Version != "1.19" {
			t.Errorf("build_instances sent to namespace %q version %q, want compute_task 1.19", r.Namespace, r.Version)
		}
		if err := json.Unmarshal(r.Args, &cast); err != nil {
			t.Fatal(err)
		}
		var all map[string]json.RawMessage
		_ = json.Unmarshal(r.Args, &all)
		for k := range all {
			keys = append(keys, k)
		}
		if r.Context["request_id"] != "req-build" {
			t.Errorf("cast with request_id %v, want the user's req-build", r.Context["request_id"])
		}
	}
	if cast == nil {
		t.Fatalf("no build_instances cast; requests: %d", len(h.cond.Requests()))
	}
	slices.Sort(keys)
	want := []string{"admin_password", "filter_properties", "host_lists", "image", "injected_files", "instances",
		"request_spec", "requested_networks", "security_groups"}
	if !slices.Equal(keys, want) {
		t.Errorf("build_instances keyword arguments %v, want %v (nova's 1.19 signature)", keys, want)
	}
	if len(cast.HostLists) != 1 || len(cast.HostLists[0]) != 0 {
		t.Errorf("host_lists = %v, want [[]]: the recorded build had no alternates", cast.HostLists)
	}
	var retry struct {
		NumAttempts int      `json:"num_attempts"`
		ExcReason   string   `json:"exc_reason"`
		Exc         []string `json:"exc"`
	}
	if err := json.Unmarshal(cast.FilterProperties["retry"], &retry); err != nil {
		t.Fatal(err)
	}
	if retry.NumAttempts != 1 || !strings.Contains(retry.ExcReason, "OCI runtime create failed") || len(retry.Exc) == 0 {
		t.Errorf("retry = %+v", retry)
	}
	if len(cast.Instances) != 1 {
		t.Fatalf("%d instances in the cast", len(cast.Instances))
	}
	sent, err := objects.ObjectFrom(cast.Instances[0])
	if err != nil {
		t.Fatal(err)
	}
	row := h.cond.Instance(uuid)
	for name, o := range map[string]*objects.Object{"cast": sent, "db": row} {
		if ts := objString(t, o, "task_state"); ts != "scheduling" {
			t.Errorf("%s: task_state = %q, want scheduling", name, ts)
		}
		if vm := objString(t, o, "vm_state"); vm != "building" {
			t.Errorf("%s: vm_state = %q, want building", name, vm)
		}
		for _, f := range []string{"host", "node", "launched_on", "availability_zone"} {
			if !o.IsNull(f) {
				t.Errorf("%s: %s = %s, want None", name, f, o.Data[f])
			}
		}
	}
	if f := h.cond.Faults(); len(f) != 0 {
		t.Errorf("a rescheduled build recorded %d faults; nova leaves that to the conductor", len(f))
	}
	if !slices.Contains(h.placement.deleted(), uuid) {
		t.Errorf("the claim on this host was not given back before the cast")
	}
}

// Without retry information (forced host, max_attempts 1) the same failure ends in ERROR with
// the reason as the fault, and nothing is cast.
func TestSpawnFailureWithoutRetryGoesToError(t *testing.T) {
	h, m := newBuildEnv(t, errors.New("Error response from daemon: OCI runtime create failed"))
	args, inst := recordedBuild(t)
	args["filter_properties"] = json.RawMessage(`{"limits": {}}`)
	uuid := runBuild(t, h, m, args, inst)
	for _, r := range h.cond.Requests() {
		if r.Method == "build_instances" {
			t.Fatal("build_instances cast although the build carried no retry information")
		}
	}
	row := h.cond.Instance(uuid)
	if vm := objString(t, row, "vm_state"); vm != "error" || !row.IsNull("task_state") || !row.IsNull("host") {
		t.Errorf("vm_state %s task_state %s host %s: want error, None, None", vm, row.Data["task_state"], row.Data["host"])
	}
	f := h.cond.Faults()
	if len(f) != 1 || !strings.Contains(objString(t, f[0], "message"), "the container could not be started: Error response from daemon") {
		t.Fatalf("faults = %v", f)
	}
}

// Invalid flavors fail everywhere: nova's BuildAbortException, no reschedule even with retry.
func TestInvalidInstanceAbortsWithoutReschedule(t *testing.T) {
	h, m := newBuildEnv(t, &invalidFlavor{})
	args, inst := recordedBuild(t)
	uuid := runBuild(t, h, m, args, inst)
	for _, r := range h.cond.Requests() {
		if r.Method == "build_instances" {
			t.Fatal("an invalid instance was rescheduled")
		}
	}
	f := h.cond.Faults()
	if len(f) != 1 || !strings.Contains(objString(t, f[0], "message"), "Build of instance "+uuid+" aborted: invalid instance") {
		t.Fatalf("faults = %v", f)
	}
}

// invalidFlavor stands for the driver's validation error.
type invalidFlavor struct{}

func (*invalidFlavor) Error() string { return "flavor memory_mb 16 (want >= 64)" }
func (*invalidFlavor) Unwrap() error { return spec.ErrInvalid }
