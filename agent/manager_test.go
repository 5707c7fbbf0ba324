package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud/cloudtest"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor/conductortest"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// testPlacement is the agent's real placement client talking to cloudtest's placement (the
// fake that passes the same conformance suite as placement itself), with the reads the tests
// check through.
type testPlacement struct {
	*cloud.Placement
	srv *cloudtest.Placement
}

func newTestPlacement(t *testing.T) *testPlacement {
	t.Helper()
	c, srv := cloudtest.NewPlacementClient(t)
	return &testPlacement{Placement: c, srv: srv}
}

// providerState is what placement holds for one resource provider.
type providerState struct {
	name   string
	gen    int
	inv    cloud.Inventories
	traits []string
}

func (p *testPlacement) provider(t *testing.T, uuid string) providerState {
	t.Helper()
	ctx := context.Background()
	rp, err := p.Provider(ctx, uuid)
	if err != nil {
		t.Fatalf("read provider %s: %v", uuid, err)
	}
	inv, _, err := p.Inventories(ctx, uuid)
	if err != nil {
		t.Fatalf("read inventories of %s: %v", uuid, err)
	}
	traits, _, err := p.ProviderTraits(ctx, uuid)
	if err != nil {
		t.Fatalf("read traits of %s: %v", uuid, err)
	}
	return providerState{name: rp.Name, gen: rp.Generation, inv: inv, traits: traits}
}

// deleted lists the consumers whose allocations the agent asked placement to delete.
func (p *testPlacement) deleted() []string {
	var out []string
	for _, r := range p.srv.Requests() {
		if c, ok := strings.CutPrefix(r.Path, "/allocations/"); ok && r.Method == http.MethodDelete {
			out = append(out, c)
		}
	}
	return out
}

// set gives consumer c the resources res on provider rp, as the scheduler's claim does.
func (p *testPlacement) set(t *testing.T, c, rp string, res map[string]int) {
	t.Helper()
	ctx := context.Background()
	cur, err := p.ConsumerAllocations(ctx, c)
	if err != nil {
		t.Fatalf("read allocations of %s: %v", c, err)
	}
	err = p.PutConsumerAllocations(ctx, c, cloud.ConsumerAllocations{Allocations: map[string]map[string]int{rp: res},
		ConsumerGeneration: cur.ConsumerGeneration, ProjectID: "p1", UserID: "u1"})
	if err != nil {
		t.Fatalf("allocate %v on %s to %s: %v", res, rp, c, err)
	}
}

// get returns consumer c's allocations (nil when it has none).
func (p *testPlacement) get(t *testing.T, c string) map[string]map[string]int {
	t.Helper()
	cur, err := p.ConsumerAllocations(context.Background(), c)
	if err != nil {
		t.Fatalf("read allocations of %s: %v", c, err)
	}
	if len(cur.Allocations) == 0 {
		return nil
	}
	return cur.Allocations
}

type harness struct {
	cond      *conductortest.Fake
	placement *testPlacement
	state     string
}

func newHarness(t *testing.T) *harness {
	return &harness{cond: conductortest.New(nil), placement: newTestPlacement(t), state: t.TempDir()}
}

func (h *harness) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{
		Host: "nca-1", HostIP: "192.0.2.10", StatePath: h.state, InstancesPath: h.state + "/instances",
		ProcRoot: "testdata/proc", HypervisorVersion: 20010024,
		Ratios:   Ratios{CPU: 4, InitialCPU: 16, InitialRAM: 1.5, InitialDisk: 1},
		Reserved: Reserved{MemoryMB: 512, DiskMB: 2048},
	}, conductor.New(h.cond), h.placement, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func objInt(t *testing.T, o *objects.Object, field string) int64 {
	t.Helper()
	var v int64
	if err := o.Get(field, &v); err != nil {
		t.Fatalf("%s.%s: %v", o.Name, field, err)
	}
	return v
}

func objString(t *testing.T, o *objects.Object, field string) string {
	t.Helper()
	var v string
	if err := o.Get(field, &v); err != nil {
		t.Fatalf("%s.%s: %v", o.Name, field, err)
	}
	return v
}

func TestStartRegistersServiceNodeAndProvider(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.manager(t).Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc := h.cond.Service("nca-1", "nova-compute")
	if svc == nil {
		t.Fatal("service not registered")
	}
	if v := objInt(t, svc, "version"); v != 64 {
		t.Errorf("service version = %d, want 64", v)
	}
	if tp := objString(t, svc, "topic"); tp != "compute" {
		t.Errorf("topic = %q", tp)
	}
	cn := h.cond.ComputeNode("nca-1", "nca-1")
	if cn == nil {
		t.Fatal("compute node not created")
	}
	node := objString(t, cn, "uuid")
	for field, want := range map[string]string{"hypervisor_type": "docker", "hypervisor_hostname": "nca-1", "host_ip": "192.0.2.10"} {
		if got := objString(t, cn, field); got != want {
			t.Errorf("compute node %s = %q, want %q", field, got, want)
		}
	}
	if free := objInt(t, cn, "free_ram_mb"); free != 24105-512 {
		t.Errorf("free_ram_mb = %d", free)
	}
	rp := h.placement.provider(t, node)
	if rp.name != "nca-1" {
		t.Fatalf("resource provider for %s: %+v", node, rp)
	}
	if vcpu := rp.inv["VCPU"]; vcpu.AllocationRatio != 4 || vcpu.Total < 1 {
		t.Errorf("VCPU inventory %+v: configured ratio 4 must win", vcpu)
	}
	if mem := rp.inv["MEMORY_MB"]; mem.Reserved != 512 || mem.AllocationRatio != 1.5 {
		t.Errorf("MEMORY_MB inventory %+v", mem)
	}
	if disk := rp.inv["DISK_GB"]; disk.Reserved != 2 {
		t.Errorf("DISK_GB inventory %+v", disk)
	}
	for _, tr := range []string{"COMPUTE_NODE", "COMPUTE_IMAGE_TYPE_QCOW2"} {
		if !slices.Contains(rp.traits, tr) {
			t.Errorf("trait %s missing from %v", tr, rp.traits)
		}
	}
	if slices.Contains(rp.traits, "COMPUTE_STATUS_DISABLED") {
		t.Errorf("enabled service has COMPUTE_STATUS_DISABLED")
	}

	// A restart keeps the same service, node and provider: nothing is created twice.
	gen := rp.gen
	if err := h.manager(t).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := objString(t, h.cond.ComputeNode("nca-1", "nca-1"), "uuid"); got != node {
		t.Fatalf("restart changed the node uuid: %s -> %s", node, got)
	}
	if got := h.placement.provider(t, node).gen; got != gen {
		t.Errorf("restart rewrote placement (generation %d -> %d) although nothing changed", gen, got)
	}
	creates := 0
	for _, r := range h.cond.Requests() {
		if r.Method == "object_action" && strings.Contains(string(r.Args), `"objmethod":"create"`) {
			creates++
		}
	}
	if creates != 2 { // one Service.create and one ComputeNode.create in all
		t.Errorf("%d create calls, want 2", creates)
	}
}

func TestHeartbeatIncrementsReportCount(t *testing.T) {
	h := newHarness(t)
	m := h.manager(t)
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := m.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	svc := h.cond.Service("nca-1", "nova-compute")
	if n := objInt(t, svc, "report_count"); n != 3 {
		t.Fatalf("report_count = %d, want 3", n)
	}
	var seen string
	if err := svc.Get("last_seen_up", &seen); err != nil || seen == "" {
		t.Errorf("last_seen_up not refreshed: %q %v", seen, err)
	}
}

func TestDisabledServiceTrait(t *testing.T) {
	h := newHarness(t)
	m := h.manager(t)
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	node := objString(t, h.cond.ComputeNode("nca-1", "nca-1"), "uuid")
	if err := h.cond.DisableService("nca-1", "nova-compute", "maintenance"); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateAvailableResource(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.placement.provider(t, node).traits, "COMPUTE_STATUS_DISABLED") {
		t.Fatal("disabled service: trait not set within one audit")
	}
	res, err := m.SetHostEnabled(ctx, true)
	if err != nil || res != "enabled" {
		t.Fatalf("SetHostEnabled = %q, %v", res, err)
	}
	if slices.Contains(h.placement.provider(t, node).traits, "COMPUTE_STATUS_DISABLED") {
		t.Fatal("set_host_enabled(true) did not remove the trait")
	}
}

func request(t *testing.T, method, version string, args map[string]any, rctx rpc.Context) *rpc.Request {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range args {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw[k] = b
	}
	return &rpc.Request{Method: method, Version: version, Args: raw, Context: rctx, Call: true}
}

func userContext(requestID string) rpc.Context {
	return rpc.Context{"request_id": requestID, "project_id": "p1", "user_id": "u1", "is_admin": false,
		"roles": []any{"member"}, "timestamp": rpc.FormatTimestamp(time.Now())}
}

func TestDispatchAnswersLikeNova(t *testing.T) {
	h := newHarness(t)
	m := h.manager(t)
	d := rpc.NewDispatcher(m.Endpoints()...)
	ctx := context.Background()

	res, err := d.Handle(ctx, &rpc.Request{Method: "ping", Namespace: "baseapi", Version: "1.0",
		Args: map[string]json.RawMessage{"arg": json.RawMessage(`"1.21 GigaWatts"`)}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(res); string(b) != `{"arg":"1.21 GigaWatts","service":"compute"}` {
		t.Errorf("ping = %s", b)
	}

	var f *rpc.Failure
	_, err = d.Handle(ctx, request(t, "no_such_method", "6.0", nil, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "NoSuchMethod" {
		t.Errorf("unknown method: %v", err)
	}
	_, err = d.Handle(ctx, request(t, "pause_instance", "6.99", nil, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "UnsupportedVersion" {
		t.Errorf("too new version: %v", err)
	}
	_, err = d.Handle(ctx, request(t, "pause_instance", "6.0", nil, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "TypeError" || !strings.Contains(f.Message, "'instance'") {
		t.Errorf("missing argument: %v", err)
	}
	_, err = d.Handle(ctx, request(t, "get_instance_diagnostics", "6.0", map[string]any{"instance": map[string]any{
		"nova_object.name": "Instance", "nova_object.namespace": "nova", "nova_object.version": "not-a-version",
		"nova_object.data": map[string]any{"uuid": 42}}}, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "InvalidVersion" || f.Message != "Invalid version: 'not-a-version'" {
		t.Errorf("unparsable object version: %v", err)
	}
	_, err = d.Handle(ctx, request(t, "pause_instance", "6.0", map[string]any{"instance": map[string]any{"x": 1}}, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "ValueError" {
		t.Errorf("malformed instance: %v", err)
	}
	res, err = d.Handle(ctx, request(t, "cache_images", "6.0", map[string]any{"image_ids": []string{"a"}}, userContext("req-1")))
	if err != nil || fmt.Sprint(res) != "map[a:unsupported]" {
		t.Errorf("cache_images = %v, %v", res, err)
	}
	_, err = d.Handle(ctx, request(t, "get_vnc_console", "6.0", map[string]any{"instance": nil, "console_type": "novnc"}, userContext("req-1")))
	if !errors.As(err, &f) || f.Class != "ConsoleTypeUnavailable" || f.Module != "nova.exception" {
		t.Errorf("vnc console: %v", err)
	}
}

// An operation the driver lacks must leave the instance as nova would: a fault, the action
// event finished with Error and task_state reverted, never stuck.
func TestUnsupportedOperationRevertsTaskState(t *testing.T) {
	h := newHarness(t)
	m := h.manager(t)
	d := rpc.NewDispatcher(m.Endpoints()...)
	ctx := context.Background()
	const uuid = "3c1a5b0e-9d2c-4a3b-8e7f-1a2b3c4d5e6f"
	inst := objects.New("Instance", "2.7")
	for k, v := range map[string]any{"uuid": uuid, "host": "nca-1", "vm_state": "active", "task_state": "pausing", "power_state": 1} {
		if err := inst.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h.cond.AddInstance(inst)
	h.cond.AddAction(uuid, "req-pause", "p1")
	row := h.cond.Instance(uuid)

	_, err := d.Handle(ctx, request(t, "pause_instance", "6.0", map[string]any{"instance": row}, userContext("req-pause")))
	var f *rpc.Failure
	if !errors.As(err, &f) || f.Class != "NotImplementedError" {
		t.Fatalf("pause_instance: %v", err)
	}
	after := h.cond.Instance(uuid)
	if !after.IsNull("task_state") {
		t.Errorf("task_state not reverted: %s", after.Data["task_state"])
	}
	if vm := objString(t, after, "vm_state"); vm != "active" {
		t.Errorf("vm_state = %s, want active", vm)
	}
	evs := h.cond.Events(uuid)
	if len(evs) != 1 || evs[0].Name != "compute_pause_instance" || evs[0].Result != "Error" || evs[0].Host != "nca-1" {
		t.Errorf("events = %+v", evs)
	}
	faults := h.cond.Faults()
	if len(faults) != 1 || !strings.Contains(objString(t, faults[0], "message"), "pause_instance is not supported") {
		t.Errorf("faults = %v", faults)
	}
}

// Without a container driver a build must still end in ERROR with a readable fault, its
// allocations released, never stuck in BUILD.
func TestBuildWithoutDriverGoesToError(t *testing.T) {
	h := newHarness(t)
	m := h.manager(t)
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const uuid = "5d1e7d4e-1111-4222-8333-944455556666"
	inst := objects.New("Instance", "2.7")
	for k, v := range map[string]any{"uuid": uuid, "vm_state": "building", "task_state": "scheduling", "power_state": 0, "host": nil, "node": nil} {
		if err := inst.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h.cond.AddInstance(inst)
	h.cond.AddAction(uuid, "req-build", "p1")
	d := rpc.NewDispatcher(m.Endpoints()...)
	args := map[string]any{"instance": h.cond.Instance(uuid), "image": map[string]any{}, "request_spec": nil,
		"filter_properties": map[string]any{}, "accel_uuids": []string{}}
	if _, err := d.Handle(ctx, request(t, "build_and_run_instance", "6.0", args, userContext("req-build"))); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	after := h.cond.Instance(uuid)
	if vm := objString(t, after, "vm_state"); vm != "error" {
		t.Fatalf("vm_state = %s, want error", vm)
	}
	if !after.IsNull("task_state") || !after.IsNull("host") {
		t.Errorf("task_state %s host %s: want both None", after.Data["task_state"], after.Data["host"])
	}
	faults := h.cond.Faults()
	if len(faults) != 1 || !strings.Contains(objString(t, faults[0], "message"), "Build of instance "+uuid+" aborted") {
		t.Fatalf("faults = %v", faults)
	}
	evs := h.cond.Events(uuid)
	if len(evs) != 1 || evs[0].Name != "compute__do_build_and_run_instance" || evs[0].Result == "" {
		t.Errorf("events = %+v", evs)
	}
	if !slices.Contains(h.placement.deleted(), uuid) {
		t.Errorf("allocations of %s not deleted: %v", uuid, h.placement.deleted())
	}
}
