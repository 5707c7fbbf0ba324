package objects

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// corpusMsg is one recorded oslo message (testdata/README.md says how the file was cut
// from the nova-zed fixtures).
type corpusMsg struct {
	File string          `json:"file"`
	Line int             `json:"line"`
	Msg  json.RawMessage `json:"msg"`
}

// readCorpus is parsed once per test binary: several tests walk the same 1.3k messages.
var readCorpus = sync.OnceValues(func() ([]corpusMsg, error) {
	f, err := os.Open("testdata/nova-zed-msgs.jsonl.gz")
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gunzip corpus: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var out []corpusMsg
	for sc.Scan() {
		var m corpusMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("corpus line %d: %w", len(out)+1, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	if len(out) < 1000 {
		return nil, fmt.Errorf("corpus has only %d messages", len(out))
	}
	return out, nil
})

func loadCorpus(t testing.TB) []corpusMsg {
	t.Helper()
	out, err := readCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var readCorpusObjects = sync.OnceValues(func() ([]foundObject, error) {
	msgs, err := readCorpus()
	if err != nil {
		return nil, err
	}
	var objs []foundObject
	for _, m := range msgs {
		findObjects(fmt.Sprintf("%s:%d", m.File, m.Line), m.Msg, &objs)
	}
	return objs, nil
})

// foundObject is one object primitive found anywhere inside a message.
type foundObject struct {
	where string
	raw   json.RawMessage
}

// findObjects walks a JSON value and returns every object primitive at any depth
// (objects nested in objects included).
func findObjects(where string, raw json.RawMessage, out *[]foundObject) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return
	}
	switch raw[0] {
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		if _, ok := m["nova_object.name"]; ok {
			*out = append(*out, foundObject{where, raw})
		} else if _, ok := m["versioned_object.name"]; ok {
			*out = append(*out, foundObject{where, raw})
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			findObjects(where+"."+k, m[k], out)
		}
	case '[':
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) != nil {
			return
		}
		for i, e := range l {
			findObjects(fmt.Sprintf("%s[%d]", where, i), e, out)
		}
	case '"':
		// oslo.message bodies of notifications and a few fields are JSON inside a string
		// (InstanceInfoCache.network_info is a list of VIF dicts, not objects), so strings
		// are not searched.
	}
}

// canonical parses JSON keeping numbers as written and sorts every "*.changes" list,
// whose order is a Python set's and carries no meaning.
func canonical(t testing.TB, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("canonical: %v", err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
				if strings.HasSuffix(k, ".changes") || k == "obj_what_changed" {
					if l, ok := x[k].([]any); ok {
						sort.Slice(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
					}
				}
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	return walk(v)
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(canonical(t, a), canonical(t, b))
}

// corpusObjects returns every object primitive in every recorded message.
func corpusObjects(t testing.TB) []foundObject {
	t.Helper()
	objs, err := readCorpusObjects()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
