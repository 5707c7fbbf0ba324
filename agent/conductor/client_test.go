package conductor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor/conductortest"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// fixtureCall is one recorded conductor call and its reply (testdata/fixture-calls.json,
// cut from the nova-zed fixtures).
type fixtureCall struct {
	Source  string                     `json:"source"`
	Request map[string]json.RawMessage `json:"request"`
	Reply   map[string]json.RawMessage `json:"reply"`
}

func loadFixtures(t *testing.T) map[string]fixtureCall {
	t.Helper()
	b, err := os.ReadFile("testdata/fixture-calls.json")
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]fixtureCall
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// canonical parses JSON keeping number spellings, sorting "*.changes" lists (Python set
// order) and blanking the given volatile keys wherever they appear.
func canonical(t *testing.T, raw []byte, volatile ...string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("canonical: %v in %s", err, raw)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if slices.Contains(volatile, k) {
					x[k] = "<volatile>"
					continue
				}
				x[k] = walk(e)
				if strings.HasSuffix(k, ".changes") {
					if l, ok := x[k].([]any); ok {
						sort.Slice(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
					}
				}
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case json.Number:
			// 16 and 16.0 are the same Python float once the receiver coerces the field.
			if f, err := x.Float64(); err == nil {
				return f
			}
		}
		return v
	}
	return walk(v)
}

func assertSameJSON(t *testing.T, what string, got, want []byte, volatile ...string) {
	t.Helper()
	g, w := canonical(t, got, volatile...), canonical(t, want, volatile...)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s differs from the recorded call\n got: %s\nwant: %s", what, got, want)
	}
}

// lastRequest returns the args of the last request with the given method.
func lastRequest(t *testing.T, f *conductortest.Fake, method string) conductortest.Request {
	t.Helper()
	reqs := f.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method {
			return reqs[i]
		}
	}
	t.Fatalf("no %s request recorded", method)
	return conductortest.Request{}
}

// contextFromFixture rebuilds the to_dict() context of a recorded request.
func contextFromFixture(t *testing.T, req map[string]json.RawMessage) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range req {
		if name, ok := strings.CutPrefix(k, "_context_"); ok {
			var x any
			if err := json.Unmarshal(v, &x); err != nil {
				t.Fatal(err)
			}
			out[name] = x
		}
	}
	return out
}

func newClient(f *conductortest.Fake) *conductor.Client {
	return conductor.New(f, conductor.WithPingSchedule(2, 50*time.Millisecond, 100*time.Millisecond))
}

func TestConformanceFake(t *testing.T) {
	f := conductortest.New(nil)
	conductortest.RunConformance(t, newClient(f), "nca-conformance-fake")
}

// The admin context has exactly the keys (and fixed values) of the recorded one.
func TestAdminContextMatchesRecording(t *testing.T) {
	fx := loadFixtures(t)["ping"]
	want := contextFromFixture(t, fx.Request)
	now := time.Date(2026, 11, 23, 14, 17, 50, 925851000, time.UTC)
	got := conductor.AdminContext(now, "req-03025ba0-91a2-453a-8b9c-a5be681c5504")
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	assertSameJSON(t, "admin context", gb, wb)
	if !strings.HasPrefix(conductor.NewRequestID(), "req-") || len(conductor.NewRequestID()) != 40 {
		t.Fatalf("request id %q", conductor.NewRequestID())
	}
}

// Requests for Service.create, the heartbeat, ComputeNode.create and event_start have
// the recorded shape (ids and timestamps aside) and the fake answers like the real one.
func TestRequestShapesMatchRecording(t *testing.T) {
	fx := loadFixtures(t)
	ctx := context.Background()
	f := conductortest.New(nil)
	c := newClient(f)
	admin := conductor.AdminContext(time.Now(), conductor.NewRequestID())

	// Service.get_by_host_and_binary → None on first start.
	_, err := c.ServiceGetByHostAndBinary(ctx, admin, "fake-1", "nova-compute")
	if !errors.Is(err, conductor.ErrNotFound) {
		t.Fatalf("first get: %v", err)
	}
	assertSameJSON(t, "Service.get_by_host_and_binary args", lastRequest(t, f, "object_class_action_versions").Args,
		fx["service_get_by_host_and_binary"].Request["args"])

	// Service.create.
	svc := objects.NewService("fake-1", "nova-compute", "compute")
	if err := c.ServiceCreate(ctx, admin, svc); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "Service.create args", lastRequest(t, f, "object_action").Args, fx["service_create"].Request["args"])
	// The reply carries the same set of updated fields as the real conductor's.
	var realReply []map[string]json.RawMessage
	if err := json.Unmarshal(fx["service_create"].Reply["result"], &realReply); err != nil {
		t.Fatal(err)
	}
	for k := range realReply[0] {
		if k != "obj_what_changed" && !svc.Has(k) {
			t.Errorf("after create, %s (returned by the real conductor) is not set", k)
		}
	}

	// Heartbeat: the recorded object was at report_count 8 with a DB-loaded row; rebuild
	// that state and compare the whole request.
	var hb struct {
		ObjInst json.RawMessage `json:"objinst"`
	}
	if err := json.Unmarshal(fx["service_save_heartbeat"].Request["args"], &hb); err != nil {
		t.Fatal(err)
	}
	recorded, err := objects.ObjectFrom(hb.ObjInst)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"report_count", "created_at", "updated_at", "last_seen_up", "id", "uuid"} {
		svc.Data[k] = recorded.Data[k]
	}
	var rc int64
	_ = recorded.Get("report_count", &rc)
	_ = svc.Set("report_count", rc-1)
	svc.ResetChanges()
	hbErr := c.ServiceHeartbeat(ctx, admin, svc) // id does not match the fake's row: ServiceNotFound
	if cls, _ := conductor.ExceptionClass(hbErr); cls != "ServiceNotFound" {
		t.Fatalf("heartbeat on an unknown id: %v", hbErr)
	}
	assertSameJSON(t, "Service.save heartbeat args", lastRequest(t, f, "object_action").Args,
		fx["service_save_heartbeat"].Request["args"])

	// ComputeNode.create as the recorded resource tracker built it.
	var cnReq struct {
		ObjInst json.RawMessage `json:"objinst"`
	}
	if err := json.Unmarshal(fx["compute_node_create"].Request["args"], &cnReq); err != nil {
		t.Fatal(err)
	}
	want, _ := objects.ObjectFrom(cnReq.ObjInst)
	cn := objects.NewComputeNode()
	for _, k := range want.Changes {
		if k == "supported_hv_specs" {
			_ = cn.Set(k, []*objects.Object{objects.NewHVSpec("x86_64", "fake", "hvm")})
			continue
		}
		cn.SetRaw(k, want.Data[k])
	}
	if err := c.ComputeNodeCreate(ctx, admin, cn); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "ComputeNode.create args", lastRequest(t, f, "object_action").Args, fx["compute_node_create"].Request["args"])
	if cn.ID() == 0 || cn.UUID() == "" {
		t.Fatal("ComputeNode.create reply not applied")
	}

	// event_start / event_finish_with_failure with the user's context.
	evFx := fx["event_start"]
	userCtx := contextFromFixture(t, evFx.Request)
	var evArgs struct {
		Args []string `json:"args"`
	}
	_ = json.Unmarshal(evFx.Request["args"], &evArgs)
	f.AddAction(evArgs.Args[0], userCtx["request_id"].(string), userCtx["project_id"].(string))
	ev := objects.ActionEvent{InstanceUUID: evArgs.Args[0], Name: evArgs.Args[1]}
	if err := c.EventStart(ctx, userCtx, ev, "fake-1"); err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, f, "object_class_action_versions")
	assertSameJSON(t, "event_start args", req.Args, evFx.Request["args"])
	if !reflect.DeepEqual(req.Context, userCtx) {
		t.Fatal("event_start did not reuse the incoming context unchanged")
	}
	if err := c.EventFinishWithFailure(ctx, userCtx, ev, nil, nil); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "event_finish_with_failure args", lastRequest(t, f, "object_class_action_versions").Args,
		fx["event_finish_with_failure"].Request["args"])
	evs := f.Events(ev.InstanceUUID)
	if len(evs) != 1 || evs[0].Result != "Success" || evs[0].Host != "fake-1" || evs[0].RequestID != userCtx["request_id"] {
		t.Fatalf("events = %+v", evs)
	}

	// InstanceList.get_by_host with the init_host expected_attrs.
	if _, err := c.InstanceListGetByHost(ctx, admin, "fake-1", []string{"info_cache", "metadata", "numa_topology"}); err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "InstanceList.get_by_host args", lastRequest(t, f, "object_class_action_versions").Args,
		fx["instance_list_get_by_host"].Request["args"])
}

// The recorded Instance.save (build: vm_state/task_state with expected_task_state
// [scheduling, None]) is reproduced from the recorded object, and the recorded reply
// applies like oslo's remotable wrapper does.
func TestInstanceSaveRecorded(t *testing.T) {
	fx := loadFixtures(t)["instance_save"]
	var args struct {
		ObjInst json.RawMessage `json:"objinst"`
	}
	if err := json.Unmarshal(fx.Request["args"], &args); err != nil {
		t.Fatal(err)
	}
	obj, err := objects.ObjectFrom(args.ObjInst)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := objects.AsInstance(obj)
	if err != nil {
		t.Fatal(err)
	}
	// A Caller that answers with the recorded reply.
	rc := replayCaller{result: fx.Reply["result"]}
	c := conductor.New(&rc)
	err = c.InstanceSave(context.Background(), contextFromFixture(t, fx.Request), inst,
		conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskScheduling, objects.TaskNone}})
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "Instance.save args", rc.args, fx.Request["args"])
	if !slices.Equal(inst.Changes, []string{"ec2_ids"}) {
		t.Fatalf("changes after save = %v, want the reply's obj_what_changed [ec2_ids]", inst.Changes)
	}
	ic, err := inst.InfoCache()
	if err != nil || ic == nil || ic.InstanceUUID() != inst.UUID() {
		t.Fatalf("info cache after save: %v %v", ic, err)
	}
	fl, err := inst.Flavor()
	if err != nil || fl.Name() != "m1.tiny" || fl.MemoryMB() != 64 {
		t.Fatalf("flavor after save: %v %v", fl, err)
	}
}

type replayCaller struct {
	result json.RawMessage
	args   json.RawMessage
}

func (r *replayCaller) Call(_ context.Context, _ map[string]any, _ string, args map[string]any) (json.RawMessage, error) {
	b, err := json.Marshal(args)
	r.args = b
	return r.result, err
}

func seedInstance(t *testing.T, f *conductortest.Fake, id string, task objects.TaskState) *objects.Instance {
	t.Helper()
	o := objects.New("Instance", "2.7")
	inst, err := objects.AsInstance(o)
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Set("uuid", id)
	inst.SetHost("fake-1")
	inst.SetNode("fake-1")
	inst.SetVMState(objects.VMActive)
	inst.SetTaskState(task)
	inst.SetPowerState(objects.PowerRunning)
	f.AddInstance(o)
	return inst
}

func TestInstanceSaveExpectedStates(t *testing.T) {
	ctx := context.Background()
	f := conductortest.New(nil)
	c := newClient(f)
	admin := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	id := "dfecc2dd-3e37-488e-82be-6c5fd2f1613a"
	seedInstance(t, f, id, objects.TaskPoweringOff)

	inst, err := c.InstanceGetByUUID(ctx, admin, id, []string{"flavor"})
	if err != nil {
		t.Fatal(err)
	}
	// Wrong expectation → UnexpectedTaskStateError, classified.
	inst.SetTaskState(objects.TaskNone)
	err = c.InstanceSave(ctx, admin, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskPoweringOn}})
	var re conductor.RemoteError
	if !errors.Is(err, conductor.ErrUnexpectedState) || !errors.As(err, &re) || re.ExceptionClass() != "UnexpectedTaskStateError" {
		t.Fatalf("save with wrong expected state: %v", err)
	}
	if errors.Is(err, conductor.ErrInstanceDeleting) {
		t.Fatal("not deleting, yet ErrInstanceDeleting")
	}
	if !slices.Contains(inst.Changes, "task_state") {
		t.Fatal("failed save must leave the local changes in place")
	}
	// Right expectation.
	inst.SetVMState(objects.VMStopped)
	inst.SetPowerState(objects.PowerShutdown)
	if err := c.InstanceSave(ctx, admin, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskPoweringOff}}); err != nil {
		t.Fatal(err)
	}
	if ch, _ := inst.WhatChanged(); len(ch) != 0 {
		t.Fatalf("changes after save: %v", ch)
	}
	if _, ok := inst.Object.Data["updated_at"]; !ok {
		t.Fatal("updated_at from the reply not applied")
	}
	row, _ := objects.AsInstance(f.Instance(id))
	if row.VMState() != objects.VMStopped || row.TaskState() != objects.TaskNone || row.PowerState() != objects.PowerShutdown {
		t.Fatalf("stored row: %s %q %d", row.VMState(), row.TaskState(), row.PowerState())
	}
	// Expecting None now holds.
	if err := c.InstanceSave(ctx, admin, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskNone}}); err != nil {
		t.Fatal(err)
	}
	// Someone deletes it: task_state deleting → ErrInstanceDeleting.
	other := objects.New("Instance", "2.7")
	other.Data = f.Instance(id).Data
	oi, _ := objects.AsInstance(other)
	oi.SetTaskState(objects.TaskDeleting)
	f.AddInstance(oi.Object)
	inst.SetTaskState(objects.TaskPoweringOn)
	err = c.InstanceSave(ctx, admin, inst, conductor.SaveOptions{ExpectedTaskState: []objects.TaskState{objects.TaskNone}})
	if !errors.Is(err, conductor.ErrInstanceDeleting) || !errors.Is(err, conductor.ErrUnexpectedState) {
		t.Fatalf("save during delete: %v", err)
	}
	// vm_state guard.
	err = c.InstanceSave(ctx, admin, inst, conductor.SaveOptions{ExpectedVMState: []objects.VMState{objects.VMActive}})
	if cls, _ := conductor.ExceptionClass(err); cls != "UnexpectedVMStateError" {
		t.Fatalf("vm_state guard: %v", err)
	}
	// Destroy, then it is gone.
	if err := c.InstanceDestroy(ctx, admin, inst); err != nil {
		t.Fatal(err)
	}
	if !inst.Deleted() {
		t.Fatal("destroy reply not applied")
	}
	if _, err := c.InstanceGetByUUID(ctx, admin, id, nil); !errors.Is(err, conductor.ErrNotFound) {
		t.Fatalf("get after destroy: %v", err)
	}
}

// Instance actions must use the user's context: with a different request id and a
// project the conductor cannot find the action.
func TestEventNeedsIncomingContext(t *testing.T) {
	ctx := context.Background()
	f := conductortest.New(nil)
	c := newClient(f)
	id := "bb01c741-7d0a-44d9-884f-bd19657be964"
	user := conductor.AdminContext(time.Now(), "req-user")
	user["project_id"] = "p1"
	f.AddAction(id, "req-user", "p1")
	ev := objects.ActionEvent{InstanceUUID: id, Name: "compute_reboot_instance"}

	other := conductor.AdminContext(time.Now(), "req-other")
	other["project_id"] = "p1"
	err := c.EventStart(ctx, other, ev, "fake-1")
	if cls, _ := conductor.ExceptionClass(err); cls != "InstanceActionNotFound" || !errors.Is(err, conductor.ErrNotFound) {
		t.Fatalf("event with a foreign request id: %v", err)
	}
	if err := c.EventStart(ctx, user, ev, "fake-1"); err != nil {
		t.Fatal(err)
	}
	val, tb := "boom", "Traceback (most recent call last):\n..."
	if err := c.EventFinishWithFailure(ctx, user, ev, &val, &tb); err != nil {
		t.Fatal(err)
	}
	evs := f.Events(id)
	if len(evs) != 1 || evs[0].Result != "Error" || evs[0].Details != "boom" || evs[0].Traceback != tb {
		t.Fatalf("events = %+v", evs)
	}
	// An admin context without project falls back to the newest action of the instance.
	if err := c.EventStart(ctx, conductor.AdminContext(time.Now(), conductor.NewRequestID()), objects.ActionEvent{InstanceUUID: id, Name: "compute_x"}, "fake-1"); err != nil {
		t.Fatalf("admin fallback: %v", err)
	}
	if err := c.EventFinish(ctx, user, objects.ActionEvent{InstanceUUID: id, Name: "compute_x"}); err != nil {
		t.Fatal(err)
	}
}

func TestFaultInfoCacheMigrationsBDMs(t *testing.T) {
	ctx := context.Background()
	f := conductortest.New(nil)
	c := newClient(f)
	admin := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	id := "dfecc2dd-3e37-488e-82be-6c5fd2f1613a"
	seedInstance(t, f, id, objects.TaskNone)

	msg := strings.Repeat("x", 300)
	fault := objects.NewInstanceFault("fake-1", id, 500, msg, "Traceback...")
	if err := c.InstanceFaultCreate(ctx, admin, fault); err != nil {
		t.Fatal(err)
	}
	faults := f.Faults()
	if len(faults) != 1 {
		t.Fatalf("faults = %d", len(faults))
	}
	var m, details string
	var code int
	_ = faults[0].Get("message", &m)
	_ = faults[0].Get("details", &details)
	_ = faults[0].Get("code", &code)
	if len(m) != 255 || details != "Traceback..." || code != 500 {
		t.Fatalf("fault stored: len(message)=%d details=%q code=%d", len(m), details, code)
	}
	if nf := objects.NewInstanceFault("fake-1", id, 404, "gone", "tb"); string(nf.Data["details"]) != `""` {
		t.Fatalf("non-500 fault details = %s, want empty", nf.Data["details"])
	}
	if err := c.InstanceFaultCreate(ctx, admin, fault); err == nil {
		t.Fatal("creating the same fault twice succeeded")
	}

	nw := json.RawMessage(`[{"id":"79e4bd27-ac0f-424b-8a91-852efc04adf5","address":"fa:16:3e:ab:98:cc","active":false}]`)
	cache, err := objects.NewInstanceInfoCache(id, nw)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.InfoCacheSave(ctx, admin, cache); err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, f, "object_action")
	var sent struct {
		ObjInst struct {
			Data    map[string]json.RawMessage `json:"nova_object.data"`
			Changes []string                   `json:"nova_object.changes"`
		} `json:"objinst"`
	}
	_ = json.Unmarshal(req.Args, &sent)
	var s string
	if err := json.Unmarshal(sent.ObjInst.Data["network_info"], &s); err != nil || s != string(nw) {
		t.Fatalf("network_info must travel as a JSON string, sent %s", sent.ObjInst.Data["network_info"])
	}
	sort.Strings(sent.ObjInst.Changes)
	if !slices.Equal(sent.ObjInst.Changes, []string{"instance_uuid", "network_info"}) {
		t.Fatalf("info cache changes = %v", sent.ObjInst.Changes)
	}
	inst, err := c.InstanceGetByUUID(ctx, admin, id, []string{"info_cache"})
	if err != nil {
		t.Fatal(err)
	}
	ic, _ := inst.InfoCache()
	got, err := ic.NetworkInfo()
	if err != nil || string(got) != string(nw) {
		t.Fatalf("stored network_info = %s, %v", got, err)
	}

	mig := objects.New("Migration", "1.7")
	for k, v := range map[string]any{"uuid": "m-1", "instance_uuid": id, "status": "pre-migrating", "migration_type": "resize",
		"source_compute": "fake-1", "source_node": "fake-1", "dest_compute": "fake-1", "dest_node": "fake-1"} {
		_ = mig.Set(k, v)
	}
	f.AddMigration(mig)
	done := mig.Clone()
	_ = done.Set("status", "confirmed")
	_ = done.Set("uuid", "m-2")
	f.AddMigration(done)
	migs, err := c.MigrationListGetInProgressAndError(ctx, admin, "fake-1", "fake-1")
	if err != nil || len(migs) != 1 || migs[0].UUID() != "m-1" {
		t.Fatalf("in-progress migrations = %v, %v", migs, err)
	}
	migs[0].SetStatus("error")
	if err := c.MigrationSave(ctx, admin, migs[0]); err != nil {
		t.Fatal(err)
	}
	if migs, _ := c.MigrationListGetInProgressAndError(ctx, admin, "fake-1", "fake-1"); len(migs) != 1 || migs[0].Status() != "error" {
		t.Fatalf("error migrations are still reported: %v", migs)
	}

	bdm := objects.New("BlockDeviceMapping", "1.21")
	for k, v := range map[string]any{"instance_uuid": id, "source_type": "image", "destination_type": "local", "boot_index": 0, "image_id": "img"} {
		_ = bdm.Set(k, v)
	}
	f.AddBDM(id, bdm)
	bdms, err := c.BDMListGetByInstanceUUID(ctx, admin, id)
	if err != nil || len(bdms) != 1 || bdms[0].SourceType() != "image" {
		t.Fatalf("bdms = %v, %v", bdms, err)
	}
	if idx, ok := bdms[0].BootIndex(); !ok || idx != 0 {
		t.Fatalf("boot index = %d %v", idx, ok)
	}
}

// Heartbeats: report_count increments and is in changes; the DB then sets last_seen_up;
// an operator's disable comes back in the reply.
func TestHeartbeatAppliesOperatorState(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	f := conductortest.New(func() time.Time { return clock })
	c := newClient(f)
	admin := conductor.AdminContext(clock, conductor.NewRequestID())
	svc := objects.NewService("fake-1", "nova-compute", "compute")
	if err := c.ServiceCreate(ctx, admin, svc); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		clock = clock.Add(10 * time.Second)
		if err := c.ServiceHeartbeat(ctx, admin, svc); err != nil {
			t.Fatal(err)
		}
		var sent struct {
			ObjInst struct {
				Changes []string `json:"nova_object.changes"`
			} `json:"objinst"`
		}
		_ = json.Unmarshal(lastRequest(t, f, "object_action").Args, &sent)
		if !slices.Equal(sent.ObjInst.Changes, []string{"report_count"}) {
			t.Fatalf("heartbeat %d changes = %v", i, sent.ObjInst.Changes)
		}
		if seen, _ := svc.LastSeenUp(); !seen.Equal(clock) || svc.ReportCount() != int64(i) {
			t.Fatalf("heartbeat %d: last_seen_up %v count %d", i, seen, svc.ReportCount())
		}
	}
	if err := f.DisableService("fake-1", "nova-compute", "maintenance"); err != nil {
		t.Fatal(err)
	}
	if err := c.ServiceHeartbeat(ctx, admin, svc); err != nil {
		t.Fatal(err)
	}
	if !svc.Disabled() || svc.DisabledReason() != "maintenance" {
		t.Fatal("operator's disable not applied from the heartbeat reply")
	}
}

func TestWaitReady(t *testing.T) {
	f := conductortest.New(nil)
	f.FailPings(3)
	c := newClient(f)
	if err := c.WaitReady(context.Background(), conductor.AdminContext(time.Now(), conductor.NewRequestID())); err != nil {
		t.Fatal(err)
	}
	var pings int
	for _, r := range f.Requests() {
		if r.Method == "ping" && r.Namespace == "baseapi" && r.Version == "1.0" {
			pings++
			if string(r.Args) != `{"arg":"1.21 GigaWatts"}` {
				t.Fatalf("ping args %s", r.Args)
			}
		}
	}
	if pings != 4 {
		t.Fatalf("pings = %d, want 4 (3 timeouts + 1 answer)", pings)
	}
	// A cancelled wait stops.
	f.FailPings(100)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx, conductor.AdminContext(time.Now(), conductor.NewRequestID())); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady with expiring ctx = %v", err)
	}
	// Without a NamespacedCaller Ping cannot work.
	if err := conductor.New(&replayCaller{}).Ping(context.Background(), nil); !errors.Is(err, conductor.ErrNoNamespacedCaller) {
		t.Fatalf("Ping without namespaced caller = %v", err)
	}
}

// An object newer than ours is backported through the conductor; compatible and unknown
// ones are kept as received.
func TestHydrate(t *testing.T) {
	ctx := context.Background()
	f := conductortest.New(nil)
	c := newClient(f)
	admin := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	newer := `{"nova_object.name":"Flavor","nova_object.namespace":"nova","nova_object.version":"1.3","nova_object.data":{"name":"m1","future":1}}`
	o, err := c.Hydrate(ctx, admin, json.RawMessage(newer))
	if err != nil || o.Version != "1.2" {
		t.Fatalf("hydrate newer: %v %v", o, err)
	}
	req := lastRequest(t, f, "object_backport_versions")
	if !strings.Contains(string(req.Args), `"object_versions":{"Flavor":"1.2"}`) {
		t.Fatalf("backport args %s", req.Args)
	}
	n := len(f.Requests())
	same := `{"nova_object.name":"Flavor","nova_object.namespace":"nova","nova_object.version":"1.1","nova_object.data":{"x":1}}`
	if o, err := c.Hydrate(ctx, admin, json.RawMessage(same)); err != nil || o.Version != "1.1" || len(f.Requests()) != n {
		t.Fatalf("compatible object: %v %v", o, err)
	}
	unknown := `{"nova_object.name":"Gizmo","nova_object.namespace":"nova","nova_object.version":"9.9","nova_object.data":{}}`
	if o, err := c.Hydrate(ctx, admin, json.RawMessage(unknown)); err != nil || o.Name != "Gizmo" {
		t.Fatalf("unknown object: %v %v", o, err)
	}
	if _, err := c.Hydrate(ctx, admin, json.RawMessage(`{"x":1}`)); !errors.Is(err, objects.ErrNotObject) {
		t.Fatalf("non-object: %v", err)
	}
}

// Malformed replies are reported and leave the object untouched.
func TestObjectActionBadReply(t *testing.T) {
	for _, reply := range []string{`null`, `[]`, `[1,2]`, `{"a":1}`, `[{"obj_what_changed":5},null]`} {
		svc := objects.NewService("h", "nova-compute", "compute")
		before, _ := json.Marshal(svc)
		c := conductor.New(&replayCaller{result: json.RawMessage(reply)})
		if err := c.ServiceSave(context.Background(), nil, svc); !errors.Is(err, conductor.ErrBadReply) {
			t.Fatalf("reply %s: err = %v", reply, err)
		}
		after, _ := json.Marshal(svc)
		if !bytes.Equal(before, after) {
			t.Fatalf("reply %s modified the object", reply)
		}
	}
	if _, err := conductor.New(&replayCaller{}).ClassAction(context.Background(), nil, "Nope", "x", nil, nil); !errors.Is(err, conductor.ErrUnknownObject) {
		t.Fatalf("unknown class: %v", err)
	}
}

// The fake, like the real conductor, refuses non-admin contexts and timestamps without
// microseconds.
func TestFakeChecksContext(t *testing.T) {
	f := conductortest.New(nil)
	c := newClient(f)
	ctx := context.Background()
	rctx := conductor.AdminContext(time.Now(), conductor.NewRequestID())
	rctx["timestamp"] = "2026-11-23T14:17:50"
	if _, err := c.ServiceGetMinimumVersion(ctx, rctx, "nova-compute"); err == nil {
		t.Fatal("timestamp without microseconds accepted")
	}
	rctx = conductor.AdminContext(time.Now(), conductor.NewRequestID())
	rctx["is_admin"] = false
	if _, err := c.ServiceGetMinimumVersion(ctx, rctx, "nova-compute"); err == nil {
		t.Fatal("non-admin context accepted")
	}
}
