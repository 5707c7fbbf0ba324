package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// optSpec is one registered option, derived from a struct field's tags:
//
//	opt:"name"        the option name as written in the file
//	default:"text"    the default as oslo would print it; absent = None
//	multi:"true"      a MultiStrOpt: repeated keys accumulate (type []string)
//
// The Go type gives the oslo type: string=StrOpt, int=IntOpt,
// float64=FloatOpt, *float64=FloatOpt with default None, bool=BoolOpt,
// []string=ListOpt (comma separated) unless multi.
type optSpec struct {
	group      string
	name       string
	def        string
	hasDefault bool
	multi      bool
	index      []int // field path from the Config root
}

// registry maps group → option name → spec.
type registry map[string]map[string]*optSpec

func (r registry) find(group, key string) *optSpec {
	return r[normalizeGroup(group)][key]
}

// buildRegistry walks the Config type. It is computed per Load rather than
// kept in a package variable so the package holds no mutable global state.
func buildRegistry(t reflect.Type) registry {
	reg := registry{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		g := f.Tag.Get("group")
		if g == "" {
			continue
		}
		g = normalizeGroup(g)
		if reg[g] == nil {
			reg[g] = map[string]*optSpec{}
		}
		addOpts(reg[g], g, f.Type, []int{i})
	}
	return reg
}

func addOpts(m map[string]*optSpec, group string, t reflect.Type, prefix []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int(nil), prefix...), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			addOpts(m, group, f.Type, idx)
			continue
		}
		name := f.Tag.Get("opt")
		if name == "" {
			continue
		}
		def, has := f.Tag.Lookup("default")
		m[name] = &optSpec{group: group, name: name, def: def, hasDefault: has,
			multi: f.Tag.Get("multi") == "true", index: idx}
	}
}

// bind fills every registered option of cfg from the files and defaults,
// collecting every error rather than stopping at the first so an operator
// sees all mistakes in one run.
func bind(cfg any, files Files) error {
	root := reflect.ValueOf(cfg).Elem()
	reg := buildRegistry(root.Type())
	res := &resolver{files: files, reg: reg}
	var errs []error
	for _, group := range sortedKeys(reg) {
		for _, name := range sortedKeys(reg[group]) {
			spec := reg[group][name]
			field := root.FieldByIndex(spec.index)
			if err := bindOne(res, spec, field); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func bindOne(res *resolver, spec *optSpec, field reflect.Value) error {
	id := spec.group + "." + spec.name
	if spec.multi {
		vals := res.files.LookupMulti(spec.group, spec.name)
		if len(vals) == 0 && spec.hasDefault && spec.def != "" {
			vals = []Value{{Text: spec.def, File: "default"}}
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			s, err := res.substitute(v.Text, spec.group, []string{id})
			if err != nil {
				return fmt.Errorf("[%s] %s (%s): %w", spec.group, spec.name, v.Where(), err)
			}
			out = append(out, s)
		}
		field.Set(reflect.ValueOf(out))
		return nil
	}
	v, ok := res.rawValue(spec.group, spec.name)
	if !ok {
		return nil // None: leave the zero value (nil pointer, empty string)
	}
	s, err := res.substitute(v.Text, spec.group, []string{id})
	if err != nil {
		return fmt.Errorf("[%s] %s (%s): %w", spec.group, spec.name, v.Where(), err)
	}
	if err := convert(s, field); err != nil {
		return fmt.Errorf("[%s] %s (%s): value %q: %w", spec.group, spec.name, v.Where(), s, err)
	}
	return nil
}

// convert parses text into the field with oslo.config's type rules.
func convert(s string, field reflect.Value) error {
	switch field.Kind() {
	case reflect.String:
		field.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return errors.New("not an integer")
		}
		field.SetInt(int64(n))
	case reflect.Float64:
		f, err := parseFloat(s)
		if err != nil {
			return err
		}
		field.SetFloat(f)
	case reflect.Pointer:
		if field.Type().Elem().Kind() != reflect.Float64 {
			return fmt.Errorf("unsupported option type %s", field.Type())
		}
		f, err := parseFloat(s)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(&f))
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case reflect.Slice:
		field.Set(reflect.ValueOf(parseList(s)))
	default:
		return fmt.Errorf("unsupported option type %s", field.Type())
	}
	return nil
}

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	return f, nil
}

// parseBool accepts exactly oslo's strict boolean spellings
// (oslo_utils.strutils TRUE_STRINGS / FALSE_STRINGS), case-insensitively.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, errors.New("not a boolean (use true/false, yes/no, on/off, 1/0)")
}

// parseList splits a ListOpt value: optional surrounding brackets, items
// separated by commas, each trimmed; the empty string is the empty list.
func parseList(s string) []string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return []string{}
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && p[0] == p[len(p)-1] && (p[0] == '"' || p[0] == '\'') {
			p = p[1 : len(p)-1]
		}
		parts[i] = p
	}
	return parts
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
