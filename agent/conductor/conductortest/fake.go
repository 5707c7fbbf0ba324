// Package conductortest provides a stateful in-memory nova-conductor for unit tests: it
// answers object_class_action_versions, object_action and the baseapi ping like the
// real conductor (same reply shapes, same exceptions as oslo failures), keeping services,
// compute nodes, instances, instance actions and their events, faults and migrations in
// memory. It records every request as it would go on the wire.
package conductortest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// Failure is an oslo failure reply: the Python exception the conductor raised.
// It satisfies conductor.RemoteError, as agent/rpc's failure type does.
type Failure struct {
	Class   string
	Module  string
	Message string
	Kwargs  map[string]any
}

// Error returns "Class: message".
func (f *Failure) Error() string { return f.Class + ": " + f.Message }

// ExceptionClass returns the Python exception class name.
func (f *Failure) ExceptionClass() string { return f.Class }

var _ conductor.RemoteError = (*Failure)(nil)

func novaErr(class, msg string, kw map[string]any) *Failure {
	return &Failure{Class: class, Module: "nova.exception", Message: msg, Kwargs: kw}
}

// Request is one call as the Caller received it; Args is the JSON the transport would
// put in the message's "args".
type Request struct {
	Namespace string
	Version   string
	Method    string
	Context   map[string]any
	Args      json.RawMessage
}

// Event is one recorded instance action event.
type Event struct {
	InstanceUUID string
	RequestID    string
	Name         string
	Host         string
	Result       string // "" while running, then "Success" or "Error"
	Details      string
	Traceback    string
}

type action struct {
	instanceUUID, requestID, projectID string
	events                             []*Event
}

// Fake is the in-memory conductor. The zero value is not usable; call New.
type Fake struct {
	mu           sync.Mutex
	now          func() time.Time
	requests     []Request
	pingFailures int
	nextID       int64

	services     []*objects.Object // rows, full data
	computeNodes []*objects.Object
	instances    map[string]*objects.Object
	actions      []*action
	faults       []*objects.Object
	migrations   []*objects.Object
	bdms         map[string][]*objects.Object
}

var (
	_ conductor.Caller           = (*Fake)(nil)
	_ conductor.NamespacedCaller = (*Fake)(nil)
)

// New returns an empty conductor. now supplies the DB clock (nil = time.Now).
func New(now func() time.Time) *Fake {
	if now == nil {
		now = time.Now
	}
	return &Fake{now: now, instances: map[string]*objects.Object{}, bdms: map[string][]*objects.Object{}}
}

// FailPings makes the next n pings time out (they wait for ctx to end), like a conductor
// that is not up yet.
func (f *Fake) FailPings(n int) { f.mu.Lock(); f.pingFailures = n; f.mu.Unlock() }

// Requests returns a copy of every request received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// AddInstance stores an instance row (an Instance primitive with at least uuid; an id
// is assigned if missing).
func (f *Fake) AddInstance(inst *objects.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	row := inst.Clone()
	row.ResetChanges()
	if !row.Has("id") {
		f.nextID++
		set(row, "id", f.nextID)
	}
	f.instances[getString(row, "uuid")] = row
}

// Instance returns a copy of the stored instance row, nil if absent.
func (f *Fake) Instance(uuid string) *objects.Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.instances[uuid]; ok {
		return r.Clone()
	}
	return nil
}

// AddAction records an instance action as nova-api would (instance_actions row), keyed
// by the user's request id and project.
func (f *Fake) AddAction(instanceUUID, requestID, projectID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, &action{instanceUUID: instanceUUID, requestID: requestID, projectID: projectID})
}

// Events returns copies of the events of an instance, in order.
func (f *Fake) Events(instanceUUID string) []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Event
	for _, a := range f.actions {
		if a.instanceUUID == instanceUUID {
			for _, e := range a.events {
				out = append(out, *e)
			}
		}
	}
	return out
}

// Faults returns copies of the recorded instance faults.
func (f *Fake) Faults() []*objects.Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*objects.Object, len(f.faults))
	for i, x := range f.faults {
		out[i] = x.Clone()
	}
	return out
}

// Service returns a copy of the stored service row, nil if absent.
func (f *Fake) Service(host, binary string) *objects.Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.findService(host, binary); r != nil {
		return r.Clone()
	}
	return nil
}

// DisableService is the operator's "openstack compute service set --disable".
func (f *Fake) DisableService(host, binary, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.findService(host, binary)
	if r == nil {
		return fmt.Errorf("disable service %s/%s: no such service", host, binary)
	}
	set(r, "disabled", true)
	set(r, "disabled_reason", reason)
	return nil
}

// ComputeNode returns a copy of the stored compute node row, nil if absent.
func (f *Fake) ComputeNode(host, node string) *objects.Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.findNode(host, node); r != nil {
		return r.Clone()
	}
	return nil
}

// AddMigration stores a Migration row.
func (f *Fake) AddMigration(m *objects.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	row := m.Clone()
	row.ResetChanges()
	if !row.Has("id") {
		f.nextID++
		set(row, "id", f.nextID)
	}
	f.migrations = append(f.migrations, row)
}

// AddBDM stores a BlockDeviceMapping row for an instance.
func (f *Fake) AddBDM(instanceUUID string, bdm *objects.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	row := bdm.Clone()
	row.ResetChanges()
	f.bdms[instanceUUID] = append(f.bdms[instanceUUID], row)
}

// CallNamespaced implements conductor.NamespacedCaller (only baseapi ping exists).
func (f *Fake) CallNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) (json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("fake conductor: encode args: %w", err)
	}
	f.mu.Lock()
	f.requests = append(f.requests, Request{Namespace: namespace, Version: version, Method: method, Context: maps.Clone(rctx), Args: raw})
	fail := f.pingFailures > 0
	if fail {
		f.pingFailures--
	}
	f.mu.Unlock()
	if namespace != "baseapi" || method != "ping" || version != "1.0" {
		// oslo dispatcher: no endpoint for that target.
		return nil, &Failure{Class: "UnsupportedVersion", Module: "oslo_messaging.rpc.dispatcher", Message: "Endpoint does not support RPC version " + version}
	}
	if fail {
		<-ctx.Done()
		return nil, fmt.Errorf("fake conductor: ping: %w", ctx.Err())
	}
	return json.Marshal(map[string]any{"service": "conductor", "arg": args["arg"]})
}

// CastNamespaced implements conductor.TaskCaster: the cast is recorded (Requests) and, like
// the real conductor's dispatcher, refused when no compute_task method of that version exists.
func (f *Fake) CastNamespaced(ctx context.Context, rctx map[string]any, namespace, version, method string, args map[string]any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("fake conductor: encode args: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Namespace: namespace, Version: version, Method: method, Context: maps.Clone(rctx), Args: raw})
	if namespace != "compute_task" || method != "build_instances" || version != conductor.ComputeTaskVersion {
		return fmt.Errorf("fake conductor: no endpoint for cast %s %s %s", namespace, version, method)
	}
	return checkContext(rctx)
}

// Call implements conductor.Caller for the ConductorAPI 3.0 object methods.
func (f *Fake) Call(ctx context.Context, rctx map[string]any, method string, args map[string]any) (json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("fake conductor: encode args: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, Request{Version: "3.0", Method: method, Context: maps.Clone(rctx), Args: raw})
	if err := checkContext(rctx); err != nil {
		return nil, err
	}
	// Decode as the real conductor sees it: from JSON, not from our Go values.
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("fake conductor: decode args: %w", err)
	}
	switch method {
	case "object_class_action_versions":
		return f.classAction(rctx, wire)
	case "object_action":
		return f.objectAction(rctx, wire)
	case "object_backport_versions":
		return f.backport(wire)
	}
	return nil, &Failure{Class: "NoSuchMethod", Module: "oslo_messaging.rpc.dispatcher", Message: "Endpoint does not support RPC method " + method}
}

// checkContext enforces what the real conductor needs from a context: an admin flag for
// DB access and a strptime-parsable timestamp (microseconds mandatory).
func checkContext(rctx map[string]any) error {
	ts, _ := rctx["timestamp"].(string)
	if _, err := time.Parse("2006-01-02T15:04:05.000000", ts); err != nil {
		return &Failure{Class: "ValueError", Module: "builtins", Message: fmt.Sprintf("time data %q does not match format '%%Y-%%m-%%dT%%H:%%M:%%S.%%f'", ts)}
	}
	// nova.context.require_context: an admin context, or a user context (user and project set).
	admin, _ := rctx["is_admin"].(bool)
	user, _ := rctx["user_id"].(string)
	project, _ := rctx["project_id"].(string)
	if !admin && (user == "" || project == "") {
		return novaErr("Forbidden", "Forbidden", map[string]any{"code": 403})
	}
	return nil
}

func (f *Fake) classAction(rctx map[string]any, wire map[string]json.RawMessage) (json.RawMessage, error) {
	var name, method string
	var versions map[string]string
	var args []json.RawMessage
	var kwargs map[string]json.RawMessage
	for k, dst := range map[string]any{"objname": &name, "objmethod": &method, "object_versions": &versions, "args": &args, "kwargs": &kwargs} {
		if err := json.Unmarshal(wire[k], dst); err != nil {
			return nil, &Failure{Class: "TypeError", Module: "builtins", Message: "bad " + k}
		}
	}
	if _, ok := versions[name]; !ok {
		return nil, &Failure{Class: "KeyError", Module: "builtins", Message: fmt.Sprintf("'%s'", name)}
	}
	arg := func(i int, kw string) json.RawMessage {
		if i >= 0 && i < len(args) {
			return args[i]
		}
		return kwargs[kw]
	}
	str := func(i int, kw string) string {
		var s string
		_ = json.Unmarshal(arg(i, kw), &s)
		return s
	}
	switch name + "." + method {
	case "Service.get_minimum_version":
		binary := str(0, "binary")
		min := 0
		for _, s := range f.services {
			if getString(s, "binary") == binary && !getBool(s, "deleted") {
				if v := int(getInt(s, "version")); min == 0 || v < min {
					min = v
				}
			}
		}
		return json.Marshal(min)
	case "Service.get_by_host_and_binary":
		if r := f.findService(str(0, "host"), str(1, "binary")); r != nil {
			return json.Marshal(r)
		}
		return json.RawMessage("null"), nil
	case "Service.get_by_compute_host":
		host := str(0, "host")
		if r := f.findService(host, "nova-compute"); r != nil {
			return json.Marshal(r)
		}
		return nil, novaErr("ComputeHostNotFound", "Compute host "+host+" could not be found.", map[string]any{"host": host, "code": 404})
	case "ComputeNode.get_by_host_and_nodename":
		host, node := str(0, "host"), str(1, "nodename")
		if r := f.findNode(host, node); r != nil {
			return json.Marshal(r)
		}
		return nil, novaErr("ComputeHostNotFound", "Compute host "+host+" could not be found.", map[string]any{"host": host, "code": 404})
	case "ComputeNodeList.get_all_by_host":
		host := str(0, "host")
		var l []*objects.Object
		for _, r := range f.computeNodes {
			if getString(r, "host") == host {
				l = append(l, r)
			}
		}
		if len(l) == 0 {
			return nil, novaErr("ComputeHostNotFound", "Compute host "+host+" could not be found.", map[string]any{"host": host, "code": 404})
		}
		return list("ComputeNodeList", l)
	case "Instance.get_by_uuid":
		id := str(0, "uuid")
		if r, ok := f.instances[id]; ok && !getBool(r, "deleted") {
			return json.Marshal(r)
		}
		return nil, novaErr("InstanceNotFound", "Instance "+id+" could not be found.", map[string]any{"instance_id": id, "code": 404})
	case "InstanceList.get_by_host", "InstanceList.get_by_host_and_node":
		host, node := str(0, "host"), ""
		if method == "get_by_host_and_node" {
			node = str(1, "node")
		}
		var l []*objects.Object
		for _, k := range slices.Sorted(maps.Keys(f.instances)) {
			r := f.instances[k]
			if getString(r, "host") == host && !getBool(r, "deleted") && (node == "" || getString(r, "node") == node) {
				l = append(l, r)
			}
		}
		return list("InstanceList", l)
	case "InstanceActionEvent.event_start":
		a, err := f.findAction(rctx, str(0, "instance_uuid"))
		if err != nil {
			return nil, err
		}
		a.events = append(a.events, &Event{InstanceUUID: a.instanceUUID, RequestID: a.requestID, Name: str(1, "event_name"), Host: str(-1, "host")})
		return json.RawMessage("null"), nil
	case "InstanceActionEvent.event_finish_with_failure", "InstanceActionEvent.event_finish":
		a, err := f.findAction(rctx, str(0, "instance_uuid"))
		if err != nil {
			return nil, err
		}
		evName := str(1, "event_name")
		var ev *Event
		for _, e := range a.events {
			if e.Name == evName {
				ev = e
			}
		}
		if ev == nil {
			return nil, novaErr("InstanceActionEventNotFound", "Event "+evName+" not found for action id", map[string]any{"event": evName, "code": 404})
		}
		var excVal, excTB *string
		_ = json.Unmarshal(arg(2, "exc_val"), &excVal)
		_ = json.Unmarshal(arg(3, "exc_tb"), &excTB)
		ev.Result = "Success"
		if excTB != nil {
			ev.Result, ev.Traceback = "Error", *excTB
			if excVal != nil {
				ev.Details = *excVal
			}
		}
		return json.RawMessage("null"), nil
	case "MigrationList.get_in_progress_and_error":
		host, node := str(0, "host"), str(1, "node")
		var l []*objects.Object
		for _, m := range f.migrations {
			src := getString(m, "source_compute") == host && getString(m, "source_node") == node
			dst := getString(m, "dest_compute") == host && getString(m, "dest_node") == node
			if (src || dst) && !slices.Contains([]string{"confirmed", "reverted", "failed", "completed", "cancelled", "done"}, getString(m, "status")) {
				l = append(l, m)
			}
		}
		return list("MigrationList", l)
	case "BlockDeviceMappingList.get_by_instance_uuid":
		return list("BlockDeviceMappingList", f.bdms[str(0, "instance_uuid")])
	}
	return nil, &Failure{Class: "AttributeError", Module: "builtins", Message: fmt.Sprintf("type object '%s' has no attribute '%s'", name, method)}
}

// findAction is nova/db/main/api.py:action_event_start's lookup: the newest action with
// this (instance, request_id); failing that, for a context without project (admin), the
// newest action of the instance.
func (f *Fake) findAction(rctx map[string]any, instanceUUID string) (*action, error) {
	reqID, _ := rctx["request_id"].(string)
	for i := len(f.actions) - 1; i >= 0; i-- {
		if a := f.actions[i]; a.instanceUUID == instanceUUID && a.requestID == reqID {
			return a, nil
		}
	}
	if rctx["project_id"] == nil {
		for i := len(f.actions) - 1; i >= 0; i-- {
			if a := f.actions[i]; a.instanceUUID == instanceUUID {
				return a, nil
			}
		}
	}
	return nil, novaErr("InstanceActionNotFound", fmt.Sprintf("Action for request_id %s on instance %s not found", reqID, instanceUUID),
		map[string]any{"request_id": reqID, "instance_uuid": instanceUUID, "code": 404})
}

func (f *Fake) objectAction(rctx map[string]any, wire map[string]json.RawMessage) (json.RawMessage, error) {
	obj, err := objects.ObjectFrom(wire["objinst"])
	if err != nil {
		return nil, &Failure{Class: "ValueError", Module: "builtins", Message: err.Error()}
	}
	if obj.Namespace != objects.NovaNamespace {
		return nil, &Failure{Class: "UnsupportedObjectError", Module: "oslo_versionedobjects.exception", Message: "Unsupported object type " + obj.Namespace + "." + obj.Name}
	}
	var method string
	_ = json.Unmarshal(wire["objmethod"], &method)
	var kwargs map[string]json.RawMessage
	_ = json.Unmarshal(wire["kwargs"], &kwargs)
	before := obj.Clone()
	var result json.RawMessage = json.RawMessage("null")
	now := objects.FormatDateTime(f.now())
	switch obj.Name + "." + method {
	case "Service.create":
		if obj.Has("id") {
			return nil, novaErr("ObjectActionError", "Object action create failed because: already created", nil)
		}
		if f.findService(getString(obj, "host"), getString(obj, "binary")) != nil {
			return nil, novaErr("ServiceBinaryExists", "Service with host "+getString(obj, "host")+" binary "+getString(obj, "binary")+" exists.", map[string]any{"host": getString(obj, "host"), "binary": getString(obj, "binary"), "code": 500})
		}
		f.nextID++
		for k, v := range map[string]any{"id": f.nextID, "uuid": uuid.NewString(), "created_at": now, "updated_at": nil, "deleted_at": nil,
			"deleted": false, "disabled": false, "disabled_reason": nil, "forced_down": false, "last_seen_up": nil} {
			if !obj.Has(k) {
				set(obj, k, v)
			}
		}
		obj.ResetChanges()
		f.services = append(f.services, obj.Clone())
	case "Service.save":
		row := f.rowByID(f.services, obj)
		if row == nil {
			return nil, novaErr("ServiceNotFound", "Service could not be found.", map[string]any{"code": 404})
		}
		changes, _ := obj.WhatChanged()
		for _, k := range changes {
			// nova/db/main/api.py:service_update: a report_count increase is the heartbeat.
			if k == "report_count" && getInt(obj, k) > getInt(row, k) {
				set(row, "last_seen_up", now)
			}
			row.Data[k] = obj.Data[k]
		}
		set(row, "updated_at", now)
		reload(obj, row)
	case "Service.destroy", "ComputeNode.destroy":
		rows := &f.services
		if obj.Name == "ComputeNode" {
			rows = &f.computeNodes
		}
		row := f.rowByID(*rows, obj)
		if row == nil {
			return nil, novaErr(obj.Name+"NotFound", obj.Name+" could not be found.", map[string]any{"code": 404})
		}
		*rows = slices.DeleteFunc(*rows, func(r *objects.Object) bool { return r == row })
		set(obj, "deleted", true)
		set(obj, "deleted_at", now)
		obj.ResetChanges()
	case "ComputeNode.create":
		if obj.Has("id") {
			return nil, novaErr("ObjectActionError", "Object action create failed because: already created", nil)
		}
		if ci := getString(obj, "cpu_info"); !json.Valid([]byte(ci)) {
			return nil, &Failure{Class: "DBError", Module: "oslo_db.exception", Message: "compute_nodes.cpu_info must be a JSON string, got " + string(obj.Data["cpu_info"])}
		}
		f.nextID++
		for k, v := range map[string]any{"id": f.nextID, "uuid": uuid.NewString(), "created_at": now, "updated_at": nil, "deleted_at": nil,
			"deleted": false, "current_workload": nil, "free_disk_gb": nil, "free_ram_mb": nil, "mapped": 0, "metrics": nil,
			"pci_device_pools": nil, "running_vms": nil, "service_id": nil} {
			if !obj.Has(k) {
				set(obj, k, v)
			}
		}
		obj.ResetChanges()
		f.computeNodes = append(f.computeNodes, obj.Clone())
	case "ComputeNode.save":
		row := f.rowByID(f.computeNodes, obj)
		if row == nil {
			return nil, novaErr("ComputeHostNotFound", "Compute host could not be found.", map[string]any{"code": 404})
		}
		changes, _ := obj.WhatChanged()
		for _, k := range changes {
			row.Data[k] = obj.Data[k]
		}
		set(row, "updated_at", now)
		reload(obj, row)
	case "Instance.save":
		id := getString(obj, "uuid")
		row, ok := f.instances[id]
		if !ok || getBool(row, "deleted") {
			return nil, novaErr("InstanceNotFound", "Instance "+id+" could not be found.", map[string]any{"instance_id": id, "code": 404})
		}
		if err := checkExpected(row, "task_state", kwargs["expected_task_state"], id); err != nil {
			return nil, err
		}
		if err := checkExpected(row, "vm_state", kwargs["expected_vm_state"], id); err != nil {
			return nil, err
		}
		changes, _ := obj.WhatChanged()
		for _, k := range changes {
			row.Data[k] = obj.Data[k]
		}
		set(row, "updated_at", now)
		reload(obj, row)
	case "Instance.destroy":
		id := getString(obj, "uuid")
		row, ok := f.instances[id]
		if !obj.Has("id") {
			return nil, novaErr("ObjectActionError", "Object action destroy failed because: already destroyed", nil)
		}
		if !ok || getBool(row, "deleted") {
			return nil, novaErr("InstanceNotFound", "Instance "+id+" could not be found.", map[string]any{"instance_id": id, "code": 404})
		}
		set(row, "deleted", true)
		set(row, "deleted_at", now)
		set(row, "terminated_at", now)
		reload(obj, row)
	case "InstanceInfoCache.save":
		id := getString(obj, "instance_uuid")
		row, ok := f.instances[id]
		if !ok {
			return nil, novaErr("InstanceInfoCacheNotFound", "Info cache for instance "+id+" could not be found.", map[string]any{"instance_uuid": id, "code": 404})
		}
		for k, v := range map[string]any{"created_at": now, "deleted": false, "deleted_at": nil} {
			if !obj.Has(k) {
				set(obj, k, v)
			}
		}
		set(obj, "updated_at", now)
		obj.ResetChanges()
		set(row, "info_cache", obj)
		row.ResetChanges()
	case "InstanceFault.create":
		if obj.Has("id") {
			return nil, novaErr("ObjectActionError", "Object action create failed because: already created", nil)
		}
		f.nextID++
		set(obj, "id", f.nextID)
		set(obj, "created_at", now)
		obj.ResetChanges()
		f.faults = append(f.faults, obj.Clone())
	case "Migration.save":
		row := f.rowByID(f.migrations, obj)
		if row == nil {
			return nil, novaErr("MigrationNotFound", "Migration could not be found.", map[string]any{"code": 404})
		}
		changes, _ := obj.WhatChanged()
		for _, k := range changes {
			row.Data[k] = obj.Data[k]
		}
		set(row, "updated_at", now)
		reload(obj, row)
	default:
		return nil, &Failure{Class: "AttributeError", Module: "builtins", Message: fmt.Sprintf("'%s' object has no attribute '%s'", obj.Name, method)}
	}
	// nova/conductor/manager.py:object_action: report every field that is new or differs.
	updates := map[string]any{}
	for k, v := range obj.Data {
		if old, ok := before.Data[k]; !ok || !jsonEqual(old, v) {
			updates[k] = v
		}
	}
	changed, _ := obj.WhatChanged()
	if changed == nil {
		changed = []string{}
	}
	updates["obj_what_changed"] = changed
	return json.Marshal([]any{updates, result})
}

// checkExpected is _instance_update's guard on task_state / vm_state.
func checkExpected(row *objects.Object, field string, raw json.RawMessage, id string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var allowed []*string
	if err := json.Unmarshal(raw, &allowed); err != nil {
		var one string
		if err := json.Unmarshal(raw, &one); err != nil {
			return &Failure{Class: "ValueError", Module: "builtins", Message: "bad expected_" + field}
		}
		allowed = []*string{&one}
	}
	actual, isSet := getOptString(row, field)
	for _, a := range allowed {
		if (a == nil && !isSet) || (a != nil && isSet && *a == actual) {
			return nil
		}
	}
	kw := map[string]any{"instance_uuid": id, "expected": string(raw), "actual": actual, "code": 500}
	if field == "task_state" && actual == string(objects.TaskDeleting) {
		return novaErr("UnexpectedDeletingTaskStateError", "Conflict updating instance "+id+". Expected: "+string(raw)+". Actual: deleting", kw)
	}
	if field == "vm_state" {
		return novaErr("UnexpectedVMStateError", "Unexpected VM state: expecting "+string(raw)+" but the VM state is actually "+actual, kw)
	}
	return novaErr("UnexpectedTaskStateError", "Conflict updating instance "+id+". Expected: "+string(raw)+". Actual: "+actual, kw)
}

func (f *Fake) backport(wire map[string]json.RawMessage) (json.RawMessage, error) {
	obj, err := objects.ObjectFrom(wire["objinst"])
	if err != nil {
		return nil, &Failure{Class: "ValueError", Module: "builtins", Message: err.Error()}
	}
	var versions map[string]string
	_ = json.Unmarshal(wire["object_versions"], &versions)
	target, ok := versions[obj.Name]
	if !ok {
		return nil, &Failure{Class: "KeyError", Module: "builtins", Message: "'" + obj.Name + "'"}
	}
	// The fake knows no per-class compat rules: it only relabels the version, which is
	// what obj_to_primitive(target_version) does for classes without obj_make_compatible.
	obj.Version = target
	return json.Marshal(obj)
}

func (f *Fake) findService(host, binary string) *objects.Object {
	for _, s := range f.services {
		if getString(s, "host") == host && getString(s, "binary") == binary {
			return s
		}
	}
	return nil
}

func (f *Fake) findNode(host, node string) *objects.Object {
	for _, n := range f.computeNodes {
		if getString(n, "host") == host && getString(n, "hypervisor_hostname") == node {
			return n
		}
	}
	return nil
}

func (f *Fake) rowByID(rows []*objects.Object, obj *objects.Object) *objects.Object {
	if !obj.Has("id") {
		return nil
	}
	id := getInt(obj, "id")
	for _, r := range rows {
		if getInt(r, "id") == id {
			return r
		}
	}
	return nil
}

// reload replaces obj's data with the row's, as _from_db_object does after a DB write,
// and clears obj's changes.
func reload(obj, row *objects.Object) {
	for k, v := range row.Data {
		obj.Data[k] = v
	}
	obj.ResetChanges()
}

func list(name string, elems []*objects.Object) (json.RawMessage, error) {
	v, _ := objects.ZedVersion(name)
	l := objects.New(name, v)
	if elems == nil {
		elems = []*objects.Object{}
	}
	if err := l.Set("objects", elems); err != nil {
		return nil, err
	}
	l.ResetChanges() // a list read from the DB carries no changes
	return json.Marshal(l)
}

func set(o *objects.Object, k string, v any) {
	if err := o.Set(k, v); err != nil {
		panic(fmt.Sprintf("conductortest: set %s: %v", k, err))
	}
}

func getString(o *objects.Object, k string) string { s, _ := getOptString(o, k); return s }

func getOptString(o *objects.Object, k string) (string, bool) {
	var s *string
	if o.Get(k, &s) != nil || s == nil {
		return "", false
	}
	return *s, true
}

func getInt(o *objects.Object, k string) int64 {
	var v int64
	_ = o.Get(k, &v)
	return v
}

func getBool(o *objects.Object, k string) bool {
	var v bool
	_ = o.Get(k, &v)
	return v
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}
