// Package objects encodes and decodes oslo.versionedobjects primitives and models the nova
// objects a compute host exchanges with nova-conductor.
//
// Object is a generic, lossless primitive: every data field stays the exact JSON the sender
// wrote (a newer conductor may send fields we do not know), nested objects stay raw until
// read, and encoding reproduces oslo's obj_to_primitive, including "nova_object.changes"
// with nested changes propagated as obj_what_changed does. Typed views (Instance, Service,
// ComputeNode, Flavor, InstanceInfoCache, Migration, ...) wrap an *Object and give names and
// Go types to the fields a compute reads or writes; AsX validates those fields once.
//
// Versions: ZedVersion/ZedVersions are nova 26.2.2's registry, Manifest(name) is the
// object_versions manifest nova sends with class actions (obj_tree_get_versions), and
// CheckVersion says whether a received object needs a conductor backport.
//
// Times: object DateTime fields use FormatDateTime ("…:05Z", no fraction), request
// contexts use FormatContextTime (microseconds mandatory). Never mix them up.
//
// Example:
//
//	o, err := objects.ObjectFrom(raw)          // any nova object
//	inst, err := objects.AsInstance(o)         // typed view, same storage
//	inst.SetVMState(objects.VMActive)
//	inst.SetTaskState(objects.TaskNone)        // None on the wire
//	b, err := json.Marshal(inst)               // changes ["vm_state","task_state"], unknown fields intact
package objects
