package objects

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every object primitive recorded on the wire (nova and neutron, requests, replies,
// notifications, nested at any depth) decodes and re-encodes to the same JSON.
func TestCorpusRoundTrip(t *testing.T) {
	objs := corpusObjects(t)
	names := map[string]int{}
	for _, f := range objs {
		o, err := ObjectFrom(f.raw)
		if err != nil {
			t.Fatalf("%s: decode: %v", f.where, err)
		}
		names[o.Name]++
		out, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("%s: encode %s: %v", f.where, o.Name, err)
		}
		if !sameJSON(t, f.raw, out) {
			t.Fatalf("%s: %s does not round-trip\n in: %s\nout: %s", f.where, o.Name, f.raw, out)
		}
	}
	if len(objs) < 2000 || len(names) < 40 {
		t.Fatalf("corpus too small: %d objects of %d classes", len(objs), len(names))
	}
	t.Logf("round-tripped %d object primitives of %d classes", len(objs), len(names))
}

// Every class action in the recorded traffic carried exactly the manifest Manifest computes.
func TestManifestMatchesRecordedTraffic(t *testing.T) {
	checked := map[string]bool{}
	for _, m := range loadCorpus(t) {
		var req struct {
			Method string `json:"method"`
			Args   struct {
				ObjName  string            `json:"objname"`
				Versions map[string]string `json:"object_versions"`
			} `json:"args"`
		}
		if err := json.Unmarshal(m.Msg, &req); err != nil || req.Method != "object_class_action_versions" {
			continue
		}
		got, ok := Manifest(req.Args.ObjName)
		if !ok {
			t.Fatalf("%s:%d: Manifest(%s) unknown", m.File, m.Line, req.Args.ObjName)
		}
		if !maps.Equal(got, req.Args.Versions) {
			t.Fatalf("%s:%d: Manifest(%s)\n got %v\nwant %v", m.File, m.Line, req.Args.ObjName, got, req.Args.Versions)
		}
		checked[req.Args.ObjName] = true
	}
	if len(checked) < 15 {
		t.Fatalf("only %d classes checked: %v", len(checked), checked)
	}
	t.Logf("manifests of %d classes match the wire", len(checked))
}

// All recorded nova objects are at our Zed registry version; unknown names are only
// versioned-notification payloads (a separate registry) and neutron objects.
func TestCorpusVersionsAreZed(t *testing.T) {
	unknown := map[string]bool{}
	for _, f := range corpusObjects(t) {
		o, err := ObjectFrom(f.raw)
		if err != nil {
			t.Fatal(err)
		}
		c, err := CheckVersion(o)
		if err != nil {
			t.Fatalf("%s: %v", f.where, err)
		}
		switch {
		case o.Prefix() != NovaPrefix:
			continue
		case c == Unknown:
			unknown[o.Name] = true
		case c == NeedsBackport:
			t.Fatalf("%s: %s %s needs a backport from Zed %v", f.where, o.Name, o.Version, must(ZedVersion(o.Name)))
		default:
			if v, _ := ZedVersion(o.Name); v != o.Version {
				t.Errorf("%s: %s at %s, Zed registry says %s", f.where, o.Name, o.Version, v)
			}
		}
	}
	for n := range unknown {
		if !strings.HasSuffix(n, "Payload") {
			t.Errorf("class %s seen on the wire is missing from the Zed registry", n)
		}
	}
}

func must[T any](v T, _ bool) T { return v }

// The typed views accept every recorded object of their class (so the nullability
// and types in their schemas match what nova really sends).
func TestTypedViewsAcceptCorpus(t *testing.T) {
	views := map[string]func(*Object) error{
		"Instance":              func(o *Object) error { _, err := AsInstance(o); return err },
		"Flavor":                func(o *Object) error { _, err := AsFlavor(o); return err },
		"ImageMeta":             func(o *Object) error { _, err := AsImageMeta(o); return err },
		"Service":               func(o *Object) error { _, err := AsService(o); return err },
		"ComputeNode":           func(o *Object) error { _, err := AsComputeNode(o); return err },
		"InstanceInfoCache":     func(o *Object) error { _, err := AsInstanceInfoCache(o); return err },
		"Migration":             func(o *Object) error { _, err := AsMigration(o); return err },
		"BlockDeviceMapping":    func(o *Object) error { _, err := AsBlockDeviceMapping(o); return err },
		"NetworkRequest":        func(o *Object) error { _, err := AsNetworkRequest(o); return err },
		"RequestSpec":           func(o *Object) error { _, err := AsRequestSpec(o); return err },
		"InstanceExternalEvent": func(o *Object) error { _, err := AsInstanceExternalEvent(o); return err },
	}
	seen := map[string]int{}
	for _, f := range corpusObjects(t) {
		o, err := ObjectFrom(f.raw)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := views[o.Name]
		if !ok {
			continue
		}
		if err := v(o); err != nil {
			t.Fatalf("%s: %v", f.where, err)
		}
		seen[o.Name]++
	}
	for n := range views {
		if seen[n] == 0 {
			t.Errorf("no %s in the corpus", n)
		}
	}
	t.Logf("typed views accepted: %v", seen)
}

func TestWhatChangedPropagation(t *testing.T) {
	child := New("EC2Ids", "1.0")
	if err := child.Set("ami_id", "ami-1"); err != nil {
		t.Fatal(err)
	}
	parent := New("Instance", "2.7")
	if err := parent.Set("ec2_ids", child); err != nil {
		t.Fatal(err)
	}
	parent.ResetChanges() // non-recursive, like oslo: the child keeps its changes
	got, err := parent.WhatChanged()
	if err != nil || !slices.Equal(got, []string{"ec2_ids"}) {
		t.Fatalf("WhatChanged = %v, %v; want [ec2_ids]", got, err)
	}
	if err := parent.ResetChangesRecursive(); err != nil {
		t.Fatal(err)
	}
	if got, _ := parent.WhatChanged(); len(got) != 0 {
		t.Fatalf("after recursive reset WhatChanged = %v", got)
	}
	var back Object
	if err := parent.Get("ec2_ids", &back); err != nil || len(back.Changes) != 0 {
		t.Fatalf("child after recursive reset: %v %v", back.Changes, err)
	}

	// A plain List(Object) field (ComputeNode.supported_hv_specs) does not propagate...
	cn := NewComputeNode()
	if err := cn.Set("supported_hv_specs", []*Object{NewHVSpec("x86_64", "docker", "exe")}); err != nil {
		t.Fatal(err)
	}
	cn.ResetChanges()
	if got, _ := cn.WhatChanged(); len(got) != 0 {
		t.Fatalf("ComputeNode with changed HVSpec in a list reports %v; oslo reports nothing", got)
	}
	// ...but an ObjectList's "objects" does.
	l, err := NewList("MigrationList", "1.5", []*Object{New("Migration", "1.7")})
	if err != nil {
		t.Fatal(err)
	}
	l.ResetChanges()
	if got, _ := l.WhatChanged(); len(got) != 0 {
		t.Fatalf("list of unchanged elements reports %v", got)
	}
	m := New("Migration", "1.7")
	_ = m.Set("status", "error")
	l2, _ := NewList("MigrationList", "1.5", []*Object{m})
	l2.ResetChanges()
	if got, _ := l2.WhatChanged(); !slices.Equal(got, []string{"objects"}) {
		t.Fatalf("list with a changed element reports %v, want [objects]", got)
	}
}

func TestGetSetHasDelete(t *testing.T) {
	o := New("Instance", "2.7")
	if o.Has("host") {
		t.Fatal("fresh object has host")
	}
	var s string
	if err := o.Get("host", &s); !errors.Is(err, ErrFieldNotSet) {
		t.Fatalf("Get unset = %v", err)
	}
	if err := o.Set("host", nil); err != nil {
		t.Fatal(err)
	}
	if !o.Has("host") || !o.IsNull("host") {
		t.Fatal("host=None not recorded as set-to-null")
	}
	if err := o.Set("host", "cmp1"); err != nil {
		t.Fatal(err)
	}
	if err := o.Get("host", &s); err != nil || s != "cmp1" {
		t.Fatalf("Get host = %q, %v", s, err)
	}
	if !slices.Equal(o.Changes, []string{"host"}) {
		t.Fatalf("Changes = %v", o.Changes)
	}
	// Assigning the same value again still counts as a change in oslo.
	o.ResetChanges()
	_ = o.Set("host", "cmp1")
	if !slices.Equal(o.Changes, []string{"host"}) {
		t.Fatalf("same-value assignment not marked changed: %v", o.Changes)
	}
	var n int
	if err := o.Get("host", &n); !errors.Is(err, ErrFieldType) {
		t.Fatalf("Get string into int = %v", err)
	}
	o.Delete("host")
	if o.Has("host") || len(o.Changes) != 0 {
		t.Fatalf("Delete left %v %v", o.Data, o.Changes)
	}
	// Changes naming fields absent from data are not encoded (obj_to_primitive filters them).
	o.Changes = []string{"ghost"}
	b, _ := json.Marshal(o)
	if strings.Contains(string(b), "ghost") {
		t.Fatalf("encoded a change for an unset field: %s", b)
	}
}

// Unknown (newer) fields and odd number spellings survive byte for byte.
func TestUnknownFieldsPreserved(t *testing.T) {
	in := `{"nova_object.name":"Service","nova_object.namespace":"nova","nova_object.version":"1.23",` +
		`"nova_object.data":{"host":"h","brand_new":{"a":[1.50,2e3]},"ratio":16.0},` +
		`"nova_object.changes":["brand_new"],"nova_object.future":"x"}`
	o, err := ObjectFrom(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Data["brand_new"]) != `{"a":[1.50,2e3]}` || string(o.Data["ratio"]) != "16.0" {
		t.Fatalf("data not preserved: %s %s", o.Data["brand_new"], o.Data["ratio"])
	}
	out, _ := json.Marshal(o)
	for _, want := range []string{`"brand_new":{"a":[1.50,2e3]}`, `"ratio":16.0`, `"nova_object.future":"x"`, `"nova_object.version":"1.23"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded %s lacks %s", out, want)
		}
	}
	if c, _ := CheckVersion(o); c != NeedsBackport {
		t.Errorf("Service 1.23 classified %v, want NeedsBackport", c)
	}
	o.Version = "1.21"
	if c, _ := CheckVersion(o); c != Compatible {
		t.Errorf("Service 1.21 classified %v, want Compatible", c)
	}
	o.Version = "2.0"
	if c, _ := CheckVersion(o); c != NeedsBackport {
		t.Errorf("Service 2.0 classified %v, want NeedsBackport", c)
	}
	o.Name = "Gadget"
	if c, _ := CheckVersion(o); c != Unknown {
		t.Errorf("Gadget classified %v, want Unknown", c)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want error
	}{
		"not json":       {`{`, ErrNotObject},
		"array":          {`[]`, ErrNotObject},
		"plain dict":     {`{"a":1}`, ErrNotObject},
		"no data":        {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0"}`, ErrMalformed},
		"data list":      {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":[]}`, ErrMalformed},
		"bad version":    {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"one","nova_object.data":{}}`, ErrMalformed},
		"name not str":   {`{"nova_object.name":1,"nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":{}}`, ErrMalformed},
		"changes bad":    {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":{},"nova_object.changes":[1]}`, ErrMalformed},
		"too deep":       {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}}`, ErrTooDeep},
		"deep in string": {`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":{"a":"` + strings.Repeat("[", 5*MaxDepth) + `"}}`, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ObjectFrom(json.RawMessage(c.in))
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	huge := make([]byte, MaxPrimitiveSize+1)
	if _, err := ObjectFrom(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge input: %v", err)
	}
}

func TestTimeFormats(t *testing.T) {
	ts := time.Date(2026, 11, 23, 14, 17, 50, 925851000, time.UTC)
	if got := FormatDateTime(ts); got != "2026-11-23T14:17:50Z" {
		t.Errorf("FormatDateTime = %s", got)
	}
	if got := FormatContextTime(ts); got != "2026-11-23T14:17:50.925851" {
		t.Errorf("FormatContextTime = %s", got)
	}
	if got := FormatContextTime(ts.Truncate(time.Second)); got != "2026-11-23T14:17:50.000000" {
		t.Errorf("FormatContextTime whole second = %s (microseconds are mandatory)", got)
	}
	for _, in := range []string{"2026-11-23T14:17:50Z", "2026-11-23T14:17:50.925851", "2026-11-23 14:17:50+00:00",
		"2026-11-23T15:17:50+01:00", "2026-11-23T14:17:50", "2026-11-23T14:17:50.000000Z"} {
		got, err := ParseDateTime(in)
		if err != nil || !got.Truncate(time.Second).Equal(ts.Truncate(time.Second)) {
			t.Errorf("ParseDateTime(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDateTime("yesterday"); !errors.Is(err, ErrFieldType) {
		t.Errorf("ParseDateTime(garbage) = %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"1.0": {1, 0}, "2.7": {2, 7}, "1.22.3": {1, 22}} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%s) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "1", "1.a", "-1.0", "1.2.3.4", "1.2.x"} {
		if _, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) accepted", in)
		}
	}
	if !(Version{1, 22}).Accepts(Version{1, 3}) || (Version{1, 22}).Accepts(Version{1, 23}) || (Version{2, 7}).Accepts(Version{1, 7}) {
		t.Error("Accepts is wrong")
	}
}

func TestManifestKnown(t *testing.T) {
	m, ok := Manifest("Service")
	want := map[string]string{"Service": "1.22", "ComputeNode": "1.19", "HVSpec": "1.2", "PciDevicePoolList": "1.1", "PciDevicePool": "1.1"}
	if !ok || !maps.Equal(m, want) {
		t.Fatalf("Manifest(Service) = %v", m)
	}
	m["Service"] = "9.9" // a copy: mutating it must not affect the registry
	if v, _ := ZedVersion("Service"); v != "1.22" {
		t.Fatal("Manifest returned the registry itself")
	}
	if _, ok := Manifest("NoSuchThing"); ok {
		t.Fatal("unknown class has a manifest")
	}
	// §2.5 of the protocol notes, spot checks.
	for n, v := range map[string]string{"Instance": "2.7", "InstanceList": "2.6", "RequestSpec": "1.14", "ImageMetaProps": "1.34",
		"InstanceExternalEvent": "1.5", "VirtualInterface": "1.3", "Selection": "1.1", "LibvirtLiveMigrateData": "1.10"} {
		if got, _ := ZedVersion(n); got != v {
			t.Errorf("ZedVersion(%s) = %s, want %s", n, got, v)
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"hé", 2, "h"},  // é is 2 bytes: keep only complete runes
		{"hé", 3, "hé"}, // exact
		{"a€b", 3, "a"}, // € is 3 bytes
		{"a€b", 4, "a€"},
		{"😀x", 3, ""},
	} {
		if got := TruncateUTF8(c.in, c.n); got != c.want {
			t.Errorf("TruncateUTF8(%q,%d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
	long := strings.Repeat("é", 200) // 400 bytes
	got := TruncateUTF8(long, FaultMessageMax)
	if len(got) != 254 || !strings.HasPrefix(long, got) {
		t.Errorf("long truncation: %d bytes", len(got))
	}
}

func ExampleObject_Set() {
	svc := NewService("cmp1", "nova-compute", "compute")
	svc.ResetChanges()
	svc.IncrementReportCount()
	b, _ := json.Marshal(svc)
	var back Object
	_ = json.Unmarshal(b, &back)
	fmt.Println(back.Changes, string(back.Data["report_count"]))
	// Output: [report_count] 1
}

// BenchmarkInstanceRoundTrip decodes, edits and re-encodes the largest recorded Instance.
func BenchmarkInstanceRoundTrip(b *testing.B) {
	var biggest json.RawMessage
	objs, err := readCorpusObjects()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range objs {
		if len(f.raw) > len(biggest) {
			if o, err := ObjectFrom(f.raw); err == nil && o.Name == "Instance" {
				biggest = f.raw
			}
		}
	}
	if biggest == nil {
		b.Fatal("no Instance in corpus")
	}
	b.SetBytes(int64(len(biggest)))
	b.ReportAllocs()
	for b.Loop() {
		o, err := ObjectFrom(biggest)
		if err != nil {
			b.Fatal(err)
		}
		inst, err := AsInstance(o)
		if err != nil {
			b.Fatal(err)
		}
		inst.SetTaskState(TaskNone)
		if _, err := json.Marshal(inst); err != nil {
			b.Fatal(err)
		}
	}
}
