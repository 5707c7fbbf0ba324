package lvm

import (
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		err        string // substring of the error; "" means it parses
		check      func(t *testing.T, root *section)
	}{
		{name: "empty", text: "", check: func(t *testing.T, root *section) {
			if len(root.keys)+len(root.sections) != 0 {
				t.Errorf("items in an empty text: %+v", root)
			}
		}},
		{name: "scalars", text: "a = 1\nb = \"two\"\nc = -3 # comment\nd=4.5\n", check: func(t *testing.T, root *section) {
			if n, ok := root.int("a"); !ok || n != 1 {
				t.Errorf("a = %d %v", n, ok)
			}
			if s, ok := root.str("b"); !ok || s != "two" {
				t.Errorf("b = %q %v", s, ok)
			}
			if n, ok := root.int("c"); !ok || n != -3 {
				t.Errorf("c = %d %v", n, ok)
			}
			if _, ok := root.int("d"); ok {
				t.Errorf("4.5 read as an integer")
			}
			if v := root.keys["d"]; v.kind != kindNumber || v.str != "4.5" {
				t.Errorf("d = %+v", v)
			}
		}},
		{name: "escapes", text: `s = "a \"quoted\" back\\slash"`, check: func(t *testing.T, root *section) {
			if s, _ := root.str("s"); s != `a "quoted" back\slash` {
				t.Errorf("s = %q", s)
			}
		}},
		{name: "hash inside string is not a comment", text: `s = "x # y" # real comment`, check: func(t *testing.T, root *section) {
			if s, _ := root.str("s"); s != "x # y" {
				t.Errorf("s = %q", s)
			}
		}},
		{name: "arrays", text: "e = []\nl = [\"A\", \"B\"]\nst = [\n\"pv0\", 0,\n\"pv1\", 12\n]", check: func(t *testing.T, root *section) {
			if l, ok := root.strings("e"); !ok || len(l) != 0 {
				t.Errorf("e = %v %v", l, ok)
			}
			if l, ok := root.strings("l"); !ok || strings.Join(l, ",") != "A,B" {
				t.Errorf("l = %v %v", l, ok)
			}
			if _, ok := root.strings("st"); ok {
				t.Errorf("mixed array read as strings")
			}
			if v := root.keys["st"]; len(v.items) != 4 || v.items[3].str != "12" {
				t.Errorf("st = %+v", v)
			}
			if l, ok := root.strings("missing"); !ok || l != nil {
				t.Errorf("missing list = %v %v", l, ok)
			}
		}},
		{name: "nested sections and names with - . +", text: "debian-vg {\nid = \"x\"\nlogical_volumes {\nroot.1+x {\nsegment1 {\nstart_extent = 0\n}\n}\n}\n}\ncontents = \"Text Format Volume Group\"\n",
			check: func(t *testing.T, root *section) {
				seg := root.sub("debian-vg").sub("logical_volumes").sub("root.1+x").sub("segment1")
				if seg == nil {
					t.Fatalf("nested section not found")
				}
				if n, ok := seg.int("start_extent"); !ok || n != 0 {
					t.Errorf("start_extent = %d %v", n, ok)
				}
				if s, _ := root.str("contents"); s != "Text Format Volume Group" {
					t.Errorf("contents = %q", s)
				}
			}},
		{name: "trailing NUL as LVM writes it", text: "a = 1\n\x00", check: func(t *testing.T, root *section) {
			if _, ok := root.int("a"); !ok {
				t.Errorf("a missing")
			}
		}},
		{name: "unterminated string", text: `a = "abc`, err: "unterminated string"},
		{name: "unclosed section", text: "vg {\na = 1\n", err: "not closed"},
		{name: "stray close", text: "a = 1\n}\n", err: "unexpected"},
		{name: "missing value", text: "a = \n", err: "expected a value"},
		{name: "bare word value", text: "a = foo\n", err: "neither a number nor a quoted string"},
		{name: "nested array", text: "a = [[1]]\n", err: "expected a value"},
		{name: "array without comma", text: "a = [1 2]\n", err: "expected , or ]"},
		{name: "duplicate key", text: "a = 1\na = 2\n", err: "given twice"},
		{name: "key and section of one name", text: "a = 1\na {\n}\n", err: "given twice"},
		{name: "name without = or {", text: "a b\n", err: "expected = or {"},
		{name: "bad byte", text: "a = 1\n@\n", err: "line 2"},
		{name: "too deep", text: strings.Repeat("s {\n", maxDepth+1) + strings.Repeat("}\n", maxDepth+1), err: "nested deeper"},
		{name: "just deep enough", text: strings.Repeat("s {\n", maxDepth) + strings.Repeat("}\n", maxDepth)},
		{name: "too many nodes", text: "a = [" + strings.Repeat("1,", maxNodes) + "1]", err: "more than"},
		{name: "too long", text: strings.Repeat(" ", maxTextSize+1), err: "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := parseText([]byte(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, root)
			}
		})
	}
}
