package objects

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeObject feeds arbitrary bytes to the decoder. Properties: no panic; any
// decoded object re-encodes, and that encoding decodes to the same object (idempotent);
// typed views and nested reads on it return errors, never panic.
func FuzzDecodeObject(f *testing.F) {
	objs, err := readCorpusObjects()
	if err != nil {
		f.Fatal(err)
	}
	for i, o := range objs {
		if i%25 == 0 { // a spread of real primitives, small enough to keep seeding fast
			f.Add([]byte(o.raw))
		}
	}
	f.Add([]byte(`{"nova_object.name":"X","nova_object.namespace":"nova","nova_object.version":"1.0","nova_object.data":{"a":[[[[{}]]]]}}`))
	f.Add([]byte(`{"versioned_object.name":"Port","versioned_object.namespace":"neutron","versioned_object.version":"1.7","versioned_object.data":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ObjectFrom(b)
		if err != nil {
			if !errors.Is(err, ErrNotObject) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		enc, err := json.Marshal(o)
		if err != nil {
			// Only a nested primitive with malformed changes can make encoding fail.
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("encode: %v", err)
			}
			return
		}
		o2, err := ObjectFrom(enc)
		if err != nil {
			t.Fatalf("re-decode own encoding: %v\n%s", err, enc)
		}
		enc2, err := json.Marshal(o2)
		if err != nil || !sameJSON(t, enc, enc2) {
			t.Fatalf("encoding not stable: %v\n%s\n%s", err, enc, enc2)
		}
		// Exercise the lazy paths on hostile data.
		for k := range o.Data {
			var n *Object
			_ = o.Get(k, &n)
			var l []*Object
			_ = o.Get(k, &l)
		}
		_, _ = AsInstance(o)
		_, _ = AsComputeNode(o)
		_, _ = Instances(o)
		_, _ = CheckVersion(o)
		_ = o.Clone().ResetChangesRecursive()
	})
}
