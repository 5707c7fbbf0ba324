package objects

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Serial namespaces: the key prefix of an object primitive. Nova uses "nova_object"
// (nova/objects/base.py:NovaObject.OBJ_SERIAL_NAMESPACE); neutron and plain
// oslo.versionedobjects use "versioned_object".
const (
	NovaPrefix      = "nova_object"
	VersionedPrefix = "versioned_object"
)

// NovaNamespace is the only project namespace nova accepts (obj_from_primitive raises
// UnsupportedObjectError for anything else).
const NovaNamespace = "nova"

// Limits applied to untrusted input. The largest primitive in real traffic (an Instance
// with every joined attribute inside a RequestSpec) is ~30 KiB and ~16 levels deep, so
// these leave ample room while keeping a hostile message from exhausting memory or stack.
const (
	// MaxPrimitiveSize is the largest encoded object accepted by UnmarshalJSON/ObjectFrom.
	MaxPrimitiveSize = 32 << 20
	// MaxDepth is the deepest JSON nesting (objects and arrays) accepted inside one primitive.
	MaxDepth = 100
)

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrNotObject means the JSON is not an object primitive (no "<prefix>.name" key).
	ErrNotObject = errors.New("not a versioned object primitive")
	// ErrMalformed means a primitive has the right shape but a bad member (e.g. data not a JSON object).
	ErrMalformed = errors.New("malformed versioned object primitive")
	// ErrTooLarge means the input exceeds MaxPrimitiveSize.
	ErrTooLarge = errors.New("versioned object primitive too large")
	// ErrTooDeep means the input nests deeper than MaxDepth.
	ErrTooDeep = errors.New("versioned object primitive nested too deeply")
	// ErrFieldNotSet means a field is absent from the object's data.
	ErrFieldNotSet = errors.New("field not set")
	// ErrWrongObject means an object of another class was given where a specific class was expected.
	ErrWrongObject = errors.New("wrong object class")
	// ErrFieldType means a field's value does not have the type the nova field declares.
	ErrFieldType = errors.New("field has wrong type")
)

// Object is one oslo.versionedobjects primitive, decoded generically so that it round-trips
// faithfully: every data field is kept as the exact JSON the sender wrote, including fields
// this agent does not know (a newer conductor may send them), and nested objects stay raw
// until asked for.
//
// The zero value is usable; a zero prefix means nova's "nova_object".
type Object struct {
	// Name is the object class, e.g. "Instance".
	Name string
	// Namespace is the project namespace, "nova" for every nova object.
	Namespace string
	// Version is the object version as sent, e.g. "2.7".
	Version string
	// Data holds the set fields, each as its JSON primitive. Unset fields are absent;
	// a field set to None is present as JSON null.
	Data map[string]json.RawMessage
	// Changes lists the fields this side changed (oslo's _changed_fields), in order of
	// first change. Nested objects with changes are added when encoding (see WhatChanged).
	Changes []string

	// prefix is the serial namespace of the keys ("nova_object" when empty).
	prefix string
	// extra keeps unknown top-level "<prefix>.*" keys so they survive a round trip.
	extra map[string]json.RawMessage
}

// New returns an empty object of the given class and version in the nova namespace.
func New(name, version string) *Object {
	return &Object{Name: name, Namespace: NovaNamespace, Version: version, Data: map[string]json.RawMessage{}}
}

// NewZed returns an empty nova object of the given class at its Zed version (§2.5 of the
// protocol notes). It fails for a class unknown to the Zed registry.
func NewZed(name string) (*Object, error) {
	v, ok := ZedVersion(name)
	if !ok {
		return nil, fmt.Errorf("new %s: %w: not in the Zed registry", name, ErrWrongObject)
	}
	return New(name, v), nil
}

// Prefix returns the serial namespace used for this object's keys.
func (o *Object) Prefix() string {
	if o.prefix == "" {
		return NovaPrefix
	}
	return o.prefix
}

// SetPrefix changes the serial namespace (NovaPrefix or VersionedPrefix) used when encoding.
func (o *Object) SetPrefix(p string) { o.prefix = p }

// ObjectFrom decodes one object primitive. Nested objects are validated lazily (when read
// with Get); the whole input is bounded by MaxPrimitiveSize and MaxDepth.
func ObjectFrom(raw json.RawMessage) (*Object, error) {
	o := &Object{}
	if err := o.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return o, nil
}

// IsObject reports whether raw looks like an object primitive (a JSON object carrying a
// "nova_object.name" or "versioned_object.name" key). It does not validate the rest.
func IsObject(raw json.RawMessage) bool {
	_, ok := detectPrefix(raw)
	return ok
}

// detectPrefix finds the serial namespace of a primitive without a full decode.
func detectPrefix(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] != '{' {
		return "", false
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return "", false
	}
	for _, p := range []string{NovaPrefix, VersionedPrefix} {
		if _, ok := probe[p+".name"]; ok {
			return p, true
		}
	}
	return "", false
}

// checkBounds rejects inputs that are too large or too deeply nested before any
// recursive decoding happens. It scans bytes once, skipping string contents.
func checkBounds(raw []byte) error {
	if len(raw) > MaxPrimitiveSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxPrimitiveSize)
	}
	depth := 0
	inStr, esc := false, false
	for _, c := range raw {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > MaxDepth {
				return fmt.Errorf("%w: more than %d levels", ErrTooDeep, MaxDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// UnmarshalJSON decodes an object primitive. Unknown data fields and unknown top-level
// "<prefix>.*" keys are kept verbatim.
func (o *Object) UnmarshalJSON(raw []byte) error {
	if err := checkBounds(raw); err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return fmt.Errorf("decode object primitive: %w: %w", ErrNotObject, err)
	}
	prefix := ""
	for _, p := range []string{NovaPrefix, VersionedPrefix} {
		if _, ok := top[p+".name"]; ok {
			prefix = p
			break
		}
	}
	if prefix == "" {
		return fmt.Errorf("decode object primitive: %w", ErrNotObject)
	}
	var n Object
	n.prefix = prefix
	if prefix == NovaPrefix {
		n.prefix = ""
	}
	str := func(key string, required bool) (string, error) {
		v, ok := top[prefix+"."+key]
		if !ok {
			if required {
				return "", fmt.Errorf("decode object primitive: %w: missing %s.%s", ErrMalformed, prefix, key)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("decode object primitive: %w: %s.%s is not a string", ErrMalformed, prefix, key)
		}
		return s, nil
	}
	var err error
	if n.Name, err = str("name", true); err != nil {
		return err
	}
	if n.Name == "" {
		return fmt.Errorf("decode object primitive: %w: empty %s.name", ErrMalformed, prefix)
	}
	if n.Namespace, err = str("namespace", true); err != nil {
		return err
	}
	if n.Version, err = str("version", true); err != nil {
		return err
	}
	if _, err := ParseVersion(n.Version); err != nil {
		return fmt.Errorf("decode %s primitive: %w: %w", n.Name, ErrMalformed, err)
	}
	data, ok := top[prefix+".data"]
	if !ok {
		return fmt.Errorf("decode %s primitive: %w: missing %s.data", n.Name, ErrMalformed, prefix)
	}
	if err := json.Unmarshal(data, &n.Data); err != nil || n.Data == nil {
		return fmt.Errorf("decode %s primitive: %w: %s.data is not a JSON object", n.Name, ErrMalformed, prefix)
	}
	if ch, ok := top[prefix+".changes"]; ok {
		if err := json.Unmarshal(ch, &n.Changes); err != nil {
			return fmt.Errorf("decode %s primitive: %w: %s.changes is not a list of strings", n.Name, ErrMalformed, prefix)
		}
	}
	for k, v := range top {
		switch strings.TrimPrefix(k, prefix+".") {
		case "name", "namespace", "version", "data", "changes":
			continue
		}
		if n.extra == nil {
			n.extra = map[string]json.RawMessage{}
		}
		n.extra[k] = v
	}
	*o = n
	return nil
}

// MarshalJSON encodes the primitive the way oslo's obj_to_primitive does: the data as
// stored, and "<prefix>.changes" = WhatChanged() restricted to fields present in data,
// omitted when empty.
func (o *Object) MarshalJSON() ([]byte, error) {
	p := o.Prefix()
	top := make(map[string]any, 5+len(o.extra))
	for k, v := range o.extra {
		top[k] = v
	}
	top[p+".name"] = o.Name
	top[p+".namespace"] = o.Namespace
	top[p+".version"] = o.Version
	data := o.Data
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	top[p+".data"] = data
	changes, err := o.WhatChanged()
	if err != nil {
		return nil, err
	}
	if len(changes) > 0 {
		top[p+".changes"] = changes
	}
	b, err := json.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encode %s primitive: %w", o.Name, err)
	}
	return b, nil
}

// WhatChanged mirrors oslo's obj_what_changed: the recorded Changes plus every field holding
// a nested object that itself reports changes (for an object list, "objects" when any
// element changed). Only fields present in Data are returned, in a stable order.
func (o *Object) WhatChanged() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if _, ok := o.Data[f]; ok && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, f := range o.Changes {
		add(f)
	}
	// Sorted so the output does not depend on map order.
	keys := make([]string, 0, len(o.Data))
	for k := range o.Data {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		changed, err := o.nestedChanged(k)
		if err != nil {
			return nil, err
		}
		if changed {
			add(k)
		}
	}
	return out, nil
}

// isList reports whether o is an ObjectListBase (single "objects" field of objects).
func (o *Object) isList() bool {
	return strings.HasSuffix(o.Name, "List")
}

// nestedChanged reports whether field holds a nested object primitive with changes
// (or, for a list object's "objects" field, any element with changes).
func (o *Object) nestedChanged(field string) (bool, error) {
	raw := bytes.TrimLeft(o.Data[field], " \t\r\n")
	if len(raw) == 0 {
		return false, nil
	}
	switch raw[0] {
	case '{':
		return primitiveHasChanges(raw)
	case '[':
		if field != "objects" || !o.isList() {
			// oslo does not look into plain lists of objects (e.g. ComputeNode.supported_hv_specs).
			return false, nil
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return false, fmt.Errorf("%s.%s: %w: %w", o.Name, field, ErrMalformed, err)
		}
		for _, e := range elems {
			ch, err := primitiveHasChanges(e)
			if err != nil || ch {
				return ch, err
			}
		}
	}
	return false, nil
}

// primitiveHasChanges reports whether raw is an object primitive whose own encoding
// lists changes. Because every primitive was produced by obj_to_primitive (ours or
// Python's), its changes key already accounts for its own children.
func primitiveHasChanges(raw json.RawMessage) (bool, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return false, nil // not an object primitive: a dict field, nothing to propagate
	}
	for _, p := range []string{NovaPrefix, VersionedPrefix} {
		if _, ok := top[p+".name"]; !ok {
			continue
		}
		ch, ok := top[p+".changes"]
		if !ok {
			return false, nil
		}
		var list []string
		if err := json.Unmarshal(ch, &list); err != nil {
			return false, fmt.Errorf("nested %s.changes: %w", p, ErrMalformed)
		}
		return len(list) > 0, nil
	}
	return false, nil
}

// Has reports whether field is set (present in data, possibly null).
func (o *Object) Has(field string) bool {
	_, ok := o.Data[field]
	return ok
}

// IsNull reports whether field is set to None.
func (o *Object) IsNull(field string) bool {
	raw, ok := o.Data[field]
	return ok && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// Get decodes field into v. v may be a *Object or **Object (nested object; null leaves a
// **Object nil), a *[]*Object (list of objects), or anything encoding/json accepts.
// An unset field returns an error wrapping ErrFieldNotSet.
func (o *Object) Get(field string, v any) error {
	raw, ok := o.Data[field]
	if !ok {
		return fmt.Errorf("get %s.%s: %w", o.Name, field, ErrFieldNotSet)
	}
	switch t := v.(type) {
	case *Object:
		if err := t.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("get %s.%s: %w", o.Name, field, err)
		}
		return nil
	case **Object:
		if o.IsNull(field) {
			*t = nil
			return nil
		}
		n, err := ObjectFrom(raw)
		if err != nil {
			return fmt.Errorf("get %s.%s: %w", o.Name, field, err)
		}
		*t = n
		return nil
	case *[]*Object:
		list, err := decodeObjectArray(raw)
		if err != nil {
			return fmt.Errorf("get %s.%s: %w", o.Name, field, err)
		}
		*t = list
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("get %s.%s: %w: %w", o.Name, field, ErrFieldType, err)
	}
	return nil
}

func decodeObjectArray(raw json.RawMessage) ([]*Object, error) {
	if err := checkBounds(raw); err != nil {
		return nil, err
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%w: not a list of objects: %w", ErrMalformed, err)
	}
	out := make([]*Object, 0, len(elems))
	for i, e := range elems {
		n, err := ObjectFrom(e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Set stores v as the primitive of field and marks the field changed (oslo marks a field
// changed on every assignment, even to the same value). A nil v stores JSON null.
// v may be an *Object or []*Object; anything else is encoded with encoding/json.
func (o *Object) Set(field string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("set %s.%s: %w", o.Name, field, err)
	}
	o.SetRaw(field, raw)
	return nil
}

// SetRaw stores an already encoded primitive as field and marks it changed.
func (o *Object) SetRaw(field string, raw json.RawMessage) {
	if o.Data == nil {
		o.Data = map[string]json.RawMessage{}
	}
	o.Data[field] = slices.Clone(raw)
	o.markChanged(field)
}

func (o *Object) markChanged(field string) {
	if !slices.Contains(o.Changes, field) {
		o.Changes = append(o.Changes, field)
	}
}

// Delete unsets field (as if it had never been set) and forgets any change to it.
func (o *Object) Delete(field string) {
	delete(o.Data, field)
	o.Changes = slices.DeleteFunc(o.Changes, func(s string) bool { return s == field })
}

// ResetChanges forgets the recorded changes (oslo obj_reset_changes(recursive=False)).
// Nested objects keep theirs, so WhatChanged may still report their fields.
func (o *Object) ResetChanges() { o.Changes = nil }

// ResetChangesRecursive forgets the changes of this object and of every nested object
// and object-list element (oslo obj_reset_changes(recursive=True)).
func (o *Object) ResetChangesRecursive() error {
	o.Changes = nil
	for k, raw := range o.Data {
		raw = bytes.TrimLeft(raw, " \t\r\n")
		if len(raw) == 0 || (raw[0] != '{' && raw[0] != '[') {
			continue
		}
		if raw[0] == '{' {
			if !IsObject(raw) {
				continue
			}
			n, err := ObjectFrom(raw)
			if err != nil {
				return fmt.Errorf("reset %s.%s: %w", o.Name, k, err)
			}
			if err := n.ResetChangesRecursive(); err != nil {
				return err
			}
			b, err := n.MarshalJSON()
			if err != nil {
				return err
			}
			o.Data[k] = b
			continue
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil || len(elems) == 0 || !IsObject(elems[0]) {
			continue
		}
		list, err := decodeObjectArray(raw)
		if err != nil {
			return fmt.Errorf("reset %s.%s: %w", o.Name, k, err)
		}
		for _, n := range list {
			if err := n.ResetChangesRecursive(); err != nil {
				return err
			}
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		o.Data[k] = b
	}
	return nil
}

// Clone returns a deep copy.
func (o *Object) Clone() *Object {
	n := *o
	n.Data = make(map[string]json.RawMessage, len(o.Data))
	for k, v := range o.Data {
		n.Data[k] = slices.Clone(v)
	}
	n.Changes = slices.Clone(o.Changes)
	if o.extra != nil {
		n.extra = make(map[string]json.RawMessage, len(o.extra))
		for k, v := range o.extra {
			n.extra[k] = slices.Clone(v)
		}
	}
	return &n
}

// Objects returns the elements of an object list (the "objects" field of an XxxList).
func (o *Object) Objects() ([]*Object, error) {
	var list []*Object
	if err := o.Get("objects", &list); err != nil {
		return nil, err
	}
	return list, nil
}

// NewList returns an object list of the given class and version holding elems, with
// "objects" marked changed as oslo does when a list is built locally.
func NewList(name, version string, elems []*Object) (*Object, error) {
	l := New(name, version)
	if elems == nil {
		elems = []*Object{}
	}
	if err := l.Set("objects", elems); err != nil {
		return nil, err
	}
	return l, nil
}

// Expect checks that o is of class name, returning an error wrapping ErrWrongObject otherwise.
func (o *Object) Expect(name string) error {
	if o == nil {
		return fmt.Errorf("expected %s, got nothing: %w", name, ErrWrongObject)
	}
	if o.Name != name {
		return fmt.Errorf("expected %s, got %s: %w", name, o.Name, ErrWrongObject)
	}
	return nil
}
