package objects

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// kind is the primitive shape of a nova field type (protocols.md §2.2).
type kind uint8

const (
	kString     kind = iota // String, UUID, Enum, IPAddress, SensitiveString...
	kInt                    // Integer: a JSON number (oslo also accepts a digit string)
	kFloat                  // Float
	kBool                   // Boolean
	kFlexBool               // FlexibleBoolean: bool or a bool-ish string
	kTime                   // DateTime
	kDictStr                // Dict(String) / Dict(String?)
	kListStr                // List(String)
	kObject                 // Object(class)
	kObjectList             // List(Object(class))
	kAny                    // anything (dicts of mixed values, opaque JSON)
)

// fieldSpec declares one field the typed wrappers read or write.
type fieldSpec struct {
	kind     kind
	nullable bool
	class    string // for kObject / kObjectList
}

// schema lists the fields of a class that this agent interprets; other fields pass
// through untouched.
type schema map[string]fieldSpec

func str() fieldSpec                 { return fieldSpec{kind: kString} }
func nstr() fieldSpec                { return fieldSpec{kind: kString, nullable: true} }
func integer() fieldSpec             { return fieldSpec{kind: kInt} }
func ninteger() fieldSpec            { return fieldSpec{kind: kInt, nullable: true} }
func float() fieldSpec               { return fieldSpec{kind: kFloat} }
func nfloat() fieldSpec              { return fieldSpec{kind: kFloat, nullable: true} }
func boolean() fieldSpec             { return fieldSpec{kind: kBool} }
func ntime() fieldSpec               { return fieldSpec{kind: kTime, nullable: true} }
func dictStr() fieldSpec             { return fieldSpec{kind: kDictStr} }
func ndictStr() fieldSpec            { return fieldSpec{kind: kDictStr, nullable: true} }
func listStr() fieldSpec             { return fieldSpec{kind: kListStr} }
func obj(class string) fieldSpec     { return fieldSpec{kind: kObject, class: class} }
func nobj(class string) fieldSpec    { return fieldSpec{kind: kObject, class: class, nullable: true} }
func objList(class string) fieldSpec { return fieldSpec{kind: kObjectList, class: class} }

// validate checks every present field named in s against its declared shape, so the
// typed accessors never meet a value of the wrong type. Errors name class and field.
func (s schema) validate(o *Object) error {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic first error
	for _, name := range names {
		raw, ok := o.Data[name]
		if !ok {
			continue
		}
		if err := s[name].check(raw); err != nil {
			return fmt.Errorf("%s.%s: %w: %w", o.Name, name, ErrFieldType, err)
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func (f fieldSpec) check(raw json.RawMessage) error {
	if isNull(raw) {
		if f.nullable {
			return nil
		}
		return fmt.Errorf("null in a non-nullable field")
	}
	switch f.kind {
	case kString:
		var s string
		return json.Unmarshal(raw, &s)
	case kInt:
		_, err := parseInt(raw)
		return err
	case kFloat:
		var v float64
		return json.Unmarshal(raw, &v)
	case kBool:
		var v bool
		return json.Unmarshal(raw, &v)
	case kFlexBool:
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		switch v.(type) {
		case bool, string:
			return nil
		}
		return fmt.Errorf("want boolean or string")
	case kTime:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		_, err := ParseDateTime(s)
		return err
	case kDictStr:
		var m map[string]*string
		return json.Unmarshal(raw, &m)
	case kListStr:
		var l []string
		return json.Unmarshal(raw, &l)
	case kObject:
		n, err := ObjectFrom(raw)
		if err != nil {
			return err
		}
		return n.Expect(f.class)
	case kObjectList:
		l, err := decodeObjectArray(raw)
		if err != nil {
			return err
		}
		for _, n := range l {
			if err := n.Expect(f.class); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseInt accepts a JSON integer or a string of digits (oslo Integer.coerce does int(v)).
func parseInt(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, fmt.Errorf("want integer: %w", err)
		}
		n = json.Number(s)
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return 0, fmt.Errorf("want integer, got %s", n)
	}
	return int64(f), nil
}

// The accessors below read fields already checked by a schema; on a value they cannot
// read (unset, null, or changed to a bad type after validation) they return the zero value.

func (o *Object) getString(f string) string {
	var s *string
	if o.Get(f, &s) != nil || s == nil {
		return ""
	}
	return *s
}

func (o *Object) getOptString(f string) (string, bool) {
	var s *string
	if o.Get(f, &s) != nil || s == nil {
		return "", false
	}
	return *s, true
}

func (o *Object) getInt(f string) (int64, bool) {
	raw, ok := o.Data[f]
	if !ok || isNull(raw) {
		return 0, false
	}
	i, err := parseInt(raw)
	return i, err == nil
}

func (o *Object) getFloat(f string) (float64, bool) {
	var v *float64
	if o.Get(f, &v) != nil || v == nil {
		return 0, false
	}
	return *v, true
}

func (o *Object) getBool(f string) bool {
	var v *bool
	if o.Get(f, &v) != nil || v == nil {
		return false
	}
	return *v
}

func (o *Object) getTime(f string) (time.Time, bool) {
	s, ok := o.getOptString(f)
	if !ok {
		return time.Time{}, false
	}
	t, err := ParseDateTime(s)
	return t, err == nil
}

func (o *Object) getDictStr(f string) map[string]string {
	var m map[string]*string
	if o.Get(f, &m) != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func (o *Object) getListStr(f string) []string {
	var l []string
	if o.Get(f, &l) != nil {
		return nil
	}
	return l
}

// setTime stores t as a DateTime primitive, or null for the zero time.
func (o *Object) setTime(f string, t time.Time) {
	if t.IsZero() {
		o.SetRaw(f, json.RawMessage("null"))
		return
	}
	o.SetRaw(f, json.RawMessage(strconv.Quote(FormatDateTime(t))))
}

// setOptString stores s, or null when s is empty (nova's nullable strings use None for "no value").
func (o *Object) setOptString(f, s string) {
	if s == "" {
		o.SetRaw(f, json.RawMessage("null"))
		return
	}
	o.mustSet(f, s)
}

// mustSet stores a value that always encodes (strings, numbers, bools, string maps).
func (o *Object) mustSet(f string, v any) {
	if err := o.Set(f, v); err != nil {
		// Only reachable with values encoding/json cannot encode, which callers never pass.
		panic(fmt.Sprintf("objects: set %s.%s: %v", o.Name, f, err))
	}
}
