package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor/conductortest"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/drivertest"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

type noPlug struct{}

func (noPlug) Plug(context.Context, string, string, []VIF) error { return nil }
func (noPlug) Unplug(context.Context, string, []VIF) error       { return nil }
func (noPlug) Announce(context.Context, string, []VIF) error     { return nil }

// recorded is one message of the trimmed recording (testdata/resize).
type recorded struct {
	Sender     string                     `json:"sender"`
	RoutingKey string                     `json:"routing_key"`
	Method     string                     `json:"method"`
	Args       map[string]json.RawMessage `json:"args"`
}

func loadResizeRecording(t *testing.T, name string) []recorded {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "resize", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		// The recording's compute host is fake-1; ours is nca-1.
		line := strings.ReplaceAll(sc.Text(), `"fake-1"`, `"nca-1"`)
		var r recorded
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// incoming returns the arguments of the recorded cast of method to the compute.
func incoming(t *testing.T, recs []recorded, method string) map[string]json.RawMessage {
	t.Helper()
	for _, r := range recs {
		if r.Method == method && strings.HasPrefix(r.RoutingKey, "compute.") {
			return r.Args
		}
	}
	t.Fatalf("recording has no %s cast", method)
	return nil
}

// stateStep projects one conductor request onto what the rest of nova sees of a
// resize: migration statuses, and instance saves that change vm_state, task_state or a
// flavor or that guard on task_state. Other requests ("" result) are not compared: the
// recording's network info refreshes, PCI and BDM reads and resource tracker saves have
// no effect on this driver's resize.
func stateStep(method string, args map[string]json.RawMessage) string {
	if method != "object_action" {
		return ""
	}
	var a struct {
		Objinst   *objects.Object            `json:"objinst"`
		Objmethod string                     `json:"objmethod"`
		Kwargs    map[string]json.RawMessage `json:"kwargs"`
	}
	raw, _ := json.Marshal(args)
	if json.Unmarshal(raw, &a) != nil || a.Objinst == nil || a.Objmethod != "save" {
		return ""
	}
	o := a.Objinst
	switch o.Name {
	case "Migration":
		var s string
		_ = o.Get("status", &s)
		return "migration " + s
	case "Instance":
		var parts []string
		for _, f := range []string{"vm_state", "task_state", "host", "flavor", "old_flavor", "new_flavor"} {
			if !slices.Contains(o.Changes, f) {
				continue
			}
			v := string(o.Data[f])
			if strings.HasSuffix(f, "flavor") && !o.IsNull(f) {
				var fl *objects.Object
				_ = o.Get(f, &fl)
				var name string
				_ = fl.Get("name", &name)
				v = name
			}
			parts = append(parts, f+"="+strings.Trim(v, `"`))
		}
		if exp, ok := a.Kwargs["expected_task_state"]; ok {
			var l []*string
			if json.Unmarshal(exp, &l) != nil {
				var one string
				_ = json.Unmarshal(exp, &one)
				l = []*string{&one}
			}
			var names []string
			for _, s := range l {
				if s == nil {
					names = append(names, "None")
				} else {
					names = append(names, *s)
				}
			}
			parts = append(parts, "expect="+strings.Join(names, ","))
		}
		if len(parts) == 0 {
			return ""
		}
		return "instance " + strings.Join(parts, " ")
	}
	return ""
}

func recordedSteps(recs []recorded) []string {
	var out []string
	for _, r := range recs {
		if r.Sender == "nova-compute" {
			if s := stateStep(r.Method, r.Args); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func ourSteps(t *testing.T, reqs []conductortest.Request) []string {
	t.Helper()
	var out []string
	for _, r := range reqs {
		var args map[string]json.RawMessage
		if err := json.Unmarshal(r.Args, &args); err != nil {
			t.Fatal(err)
		}
		if s := stateStep(r.Method, args); s != "" {
			out = append(out, s)
		}
	}
	return out
}

type resizeEnv struct {
	h    *harness
	m    *Manager
	df   *drivertest.Fake
	disp *rpc.Dispatcher
	rp   string
	uuid string
}

func newResizeEnv(t *testing.T, prep map[string]json.RawMessage) *resizeEnv {
	t.Helper()
	ctx := context.Background()
	h := newHarness(t)
	m, err := New(Options{Host: "nca-1", HostIP: "192.0.2.10", StatePath: h.state, InstancesPath: h.state + "/instances",
		ProcRoot: "testdata/proc", HypervisorVersion: 20010024, Ratios: Ratios{InitialCPU: 16, InitialRAM: 1.5, InitialDisk: 1}},
		conductor.New(h.cond), h.placement, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The container driver on the in-memory Docker.
	df := drivertest.NewFake()
	cg := t.TempDir()
	for _, c := range []string{"memory", "cpu", "pids"} {
		if err := os.Mkdir(filepath.Join(cg, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := driver.New(ctx, df, driver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		driver.WithCgroups(driver.HostCgroupsV1{Root: cg}), driver.WithStateDir(t.TempDir()), driver.WithProcRoot(t.TempDir()),
		driver.WithLXCFSCheck(func(string) error { return errors.New("not mounted") }), driver.WithArch("amd64"))
	if err != nil {
		t.Fatal(err)
	}
	m.SetLifecycle(&Lifecycle{Driver: d, Plugger: noPlug{}, Bridge: "br-int"})

	o, err := objects.ObjectFrom(prep["instance"])
	if err != nil {
		t.Fatal(err)
	}
	inst, err := objects.AsInstance(o)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := inst.Flavor()
	img := "nca-test/guest:1"
	if _, err := df.ImageImport(ctx, client.ImageImportSource{Source: strings.NewReader(emptyTar()), SourceName: "-"}, img, client.ImageImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Spawn(ctx, spec.Instance{UUID: inst.UUID(), Hostname: "vm1", Image: img, Flavor: specFlavor(fl)}, nil); err != nil {
		t.Fatal(err)
	}
	h.cond.AddInstance(o)
	mo, err := objects.ObjectFrom(prep["migration"])
	if err != nil {
		t.Fatal(err)
	}
	h.cond.AddMigration(mo)
	m.mu.Lock()
	rp := m.computeNode.UUID()
	m.mu.Unlock()
	return &resizeEnv{h: h, m: m, df: df, disp: rpc.NewDispatcher(m.Endpoints()...), rp: rp, uuid: inst.UUID()}
}

func emptyTar() string { return string(make([]byte, 1024)) }

// cast dispatches a recorded cast to the agent, with our fake DB's instance row in place
// of the recorded one, and waits for the chain of casts it starts.
func (e *resizeEnv) cast(t *testing.T, method string, args map[string]json.RawMessage, reqID string, taskState any) error {
	t.Helper()
	row := e.h.cond.Instance(e.uuid)
	if taskState != "" {
		// What nova-api saves before casting (resize_prep, resize_reverting).
		if err := row.Set("task_state", taskState); err != nil {
			t.Fatal(err)
		}
		e.h.cond.AddInstance(row)
		row.ResetChanges() // nova-api's cast carries the saved instance, without changes
	}
	e.h.cond.AddAction(e.uuid, reqID, "p1")
	req := &rpc.Request{Method: method, Version: "6.0", Args: maps.Clone(args), Context: userContext(reqID)}
	raw, _ := json.Marshal(row)
	req.Args["instance"] = raw
	_, err := e.disp.Handle(context.Background(), req)
	e.m.Wait()
	return err
}

func (e *resizeEnv) memory(t *testing.T) int64 {
	t.Helper()
	r, err := e.df.ContainerInspect(context.Background(), "nca-"+e.uuid, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Container.State.Running {
		t.Fatalf("container of %s is not running", e.uuid)
	}
	return r.Container.HostConfig.Memory
}

func (e *resizeEnv) row(t *testing.T) (vm, task, flavor string, stashed bool, mc bool) {
	t.Helper()
	row := e.h.cond.Instance(e.uuid)
	inst, err := objects.AsInstance(row)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := inst.Flavor()
	return string(inst.VMState()), string(inst.TaskState()), fl.Name(),
		!row.IsNull("old_flavor") || !row.IsNull("new_flavor") || inst.SystemMetadata()["old_vm_state"] != "",
		row.Has("migration_context") && !row.IsNull("migration_context")
}

func (e *resizeEnv) checkSteps(t *testing.T, phase string, recs []recorded, from int) int {
	t.Helper()
	reqs := e.h.cond.Requests()
	got, want := ourSteps(t, reqs[from:]), recordedSteps(recs)
	if !slices.Equal(got, want) {
		t.Errorf("%s: state steps differ from nova-compute's\n got: %q\nwant: %q", phase, got, want)
	}
	return len(reqs)
}

func eventNames(evs []conductortest.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name+":"+e.Result)
	}
	return out
}

// TestSameHostResizeFollowsRecording replays what nova-api and nova-conductor cast to a
// real nova-compute doing resize, confirm, resize and revert on one host, and checks that
// the agent moves the instance and the migration through the same states, records the
// same action events, applies the flavors to the container and leaves placement as nova
// does: the migration's allocation deleted on confirm, moved back on revert.
func TestSameHostResizeFollowsRecording(t *testing.T) {
	resize, confirm := loadResizeRecording(t, "f-resize"), loadResizeRecording(t, "f-resize-confirm")
	resize2, revert := loadResizeRecording(t, "f-resize2"), loadResizeRecording(t, "f-resize-revert")
	prep := incoming(t, resize, "prep_resize")
	e := newResizeEnv(t, prep)
	tiny := map[string]int{"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}
	small := map[string]int{"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}
	if got := e.memory(t); got != 64<<20 {
		t.Fatalf("container memory before resize %d", got)
	}
	var mig1, mig2 string
	_ = json.Unmarshal(mustField(t, prep["migration"], "uuid"), &mig1)
	// The conductor's MigrationTask moved the source allocation to the migration and the
	// scheduler claimed the new flavor for the instance.
	e.h.placement.set(t, e.uuid, e.rp, small)
	e.h.placement.set(t, mig1, e.rp, tiny)

	start := len(e.h.cond.Requests())
	if err := e.cast(t, "prep_resize", prep, "req-resize", "resize_prep"); err != nil {
		t.Fatal(err)
	}
	start = e.checkSteps(t, "resize", resize, start)
	if vm, task, fl, stashed, mc := e.row(t); vm != "resized" || task != "" || fl != "m1.small" || !stashed || !mc {
		t.Fatalf("after resize: vm %s task %q flavor %s stashed %v migration context %v", vm, task, fl, stashed, mc)
	}
	if got := e.memory(t); got != 128<<20 {
		t.Errorf("container memory after resize %d, want %d", got, 128<<20)
	}
	if got := eventNames(e.h.cond.Events(e.uuid)); !slices.Equal(got, []string{"compute_prep_resize:Success", "compute_resize_instance:Success", "compute_finish_resize:Success"}) {
		t.Errorf("resize events %v", got)
	}
	// In VERIFY_RESIZE the node holds both flavors, as nova's resource tracker counts them.
	used := func() int64 {
		t.Helper()
		if err := e.m.UpdateAvailableResource(context.Background()); err != nil {
			t.Fatal(err)
		}
		cn := e.h.cond.ComputeNode("nca-1", "nca-1")
		var v int64
		if err := json.Unmarshal(cn.Data["memory_mb_used"], &v); err != nil {
			t.Fatalf("memory_mb_used: %v", err)
		}
		return v
	}
	verifying := used()

	if err := e.cast(t, "confirm_resize", incoming(t, confirm, "confirm_resize"), "req-confirm", ""); err != nil {
		t.Fatal(err)
	}
	start = e.checkSteps(t, "confirm", confirm, start)
	if vm, task, fl, stashed, mc := e.row(t); vm != "active" || task != "" || fl != "m1.small" || stashed || mc {
		t.Fatalf("after confirm: vm %s task %q flavor %s stashed %v migration context %v", vm, task, fl, stashed, mc)
	}
	if a := e.h.placement.get(t, mig1); a != nil {
		t.Errorf("migration %s still holds %v after confirm", mig1, a)
	}
	if a := e.h.placement.get(t, e.uuid); !maps.Equal(a[e.rp], small) {
		t.Errorf("instance allocation after confirm %v", a)
	}
	if confirmed := used(); verifying-confirmed != 64 {
		t.Errorf("compute node memory_mb_used %d in VERIFY_RESIZE, %d after confirm: want the old flavor's 64 MB held until confirm", verifying, confirmed)
	}

	prep2 := incoming(t, resize2, "prep_resize")
	_ = json.Unmarshal(mustField(t, prep2["migration"], "uuid"), &mig2)
	mo, err := objects.ObjectFrom(prep2["migration"])
	if err != nil {
		t.Fatal(err)
	}
	e.h.cond.AddMigration(mo)
	e.h.placement.set(t, e.uuid, e.rp, tiny)
	e.h.placement.set(t, mig2, e.rp, small)
	if err := e.cast(t, "prep_resize", prep2, "req-resize2", "resize_prep"); err != nil {
		t.Fatal(err)
	}
	start = e.checkSteps(t, "resize back", resize2, start)
	if got := e.memory(t); got != 64<<20 {
		t.Errorf("container memory after the second resize %d, want %d", got, 64<<20)
	}

	if err := e.cast(t, "revert_resize", incoming(t, revert, "revert_resize"), "req-revert", "resize_reverting"); err != nil {
		t.Fatal(err)
	}
	e.checkSteps(t, "revert", revert, start)
	if vm, task, fl, stashed, mc := e.row(t); vm != "active" || task != "" || fl != "m1.small" || stashed || mc {
		t.Fatalf("after revert: vm %s task %q flavor %s stashed %v migration context %v", vm, task, fl, stashed, mc)
	}
	if got := e.memory(t); got != 128<<20 {
		t.Errorf("container memory after revert %d, want %d", got, 128<<20)
	}
	if a := e.h.placement.get(t, mig2); a != nil {
		t.Errorf("migration %s still holds %v after revert", mig2, a)
	}
	if a := e.h.placement.get(t, e.uuid); !maps.Equal(a[e.rp], small) {
		t.Errorf("instance allocation after revert %v, want the old flavor %v", a, small)
	}
	if f := e.h.cond.Faults(); len(f) != 0 {
		t.Errorf("faults recorded: %v", f)
	}
}

func mustField(t *testing.T, raw json.RawMessage, field string) json.RawMessage {
	t.Helper()
	o, err := objects.ObjectFrom(raw)
	if err != nil {
		t.Fatal(err)
	}
	return o.Data[field]
}

// A resize from another host is refused without touching the guest: the instance goes
// back to its vm_state, the migration errors out and the allocation returns to the
// instance.
func TestPrepResizeFromAnotherHostRollsBack(t *testing.T) {
	resize := loadResizeRecording(t, "f-resize")
	prep := maps.Clone(incoming(t, resize, "prep_resize"))
	e := newResizeEnv(t, prep)
	row := e.h.cond.Instance(e.uuid)
	if err := row.Set("host", "other-host"); err != nil {
		t.Fatal(err)
	}
	e.h.cond.AddInstance(row)
	var mig string
	_ = json.Unmarshal(mustField(t, prep["migration"], "uuid"), &mig)
	tiny := map[string]int{"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}
	e.h.placement.set(t, e.uuid, e.rp, map[string]int{"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1})
	e.h.placement.set(t, mig, e.rp, tiny)
	if err := e.cast(t, "prep_resize", prep, "req-x", "resize_prep"); err == nil || !strings.Contains(err.Error(), "MigrationError") {
		t.Errorf("prep_resize from another host: %v, want MigrationError", err)
	}
	if vm, task, _, _, _ := e.row(t); vm != "active" || task != "" {
		t.Errorf("after a refused resize: vm %s task %q, want active/None", vm, task)
	}
	if a := e.h.placement.get(t, mig); a != nil {
		t.Errorf("migration still holds %v", a)
	}
	if a := e.h.placement.get(t, e.uuid); !maps.Equal(a[e.rp], tiny) {
		t.Errorf("instance allocation %v, want its old %v back", a, tiny)
	}
	evs := e.h.cond.Events(e.uuid)
	if len(evs) != 1 || evs[0].Name != "compute_prep_resize" || evs[0].Result != "Error" || !strings.Contains(evs[0].Details, "same host only") {
		t.Errorf("events %+v", evs)
	}
	if got := e.memory(t); got != 64<<20 {
		t.Errorf("the guest was changed: memory %d", got)
	}
}

func TestMoveAllocationsPlan(t *testing.T) {
	g1, g4 := 1, 4
	src := cloud.ConsumerAllocations{Allocations: map[string]map[string]int{"rp": {"VCPU": 1}}, ConsumerGeneration: &g1, ProjectID: "p", UserID: "u"}
	dst := cloud.ConsumerAllocations{Allocations: map[string]map[string]int{"rp": {"VCPU": 2}}, ConsumerGeneration: &g4, ProjectID: "other", UserID: "other"}
	to, empty := MoveAllocationsPlan(src, dst)
	if *to.ConsumerGeneration != 4 || to.Allocations["rp"]["VCPU"] != 1 || to.ProjectID != "p" || to.UserID != "u" {
		t.Errorf("target write %+v", to)
	}
	if *empty.ConsumerGeneration != 1 || len(empty.Allocations) != 0 || empty.ProjectID != "p" {
		t.Errorf("source write %+v", empty)
	}
}
