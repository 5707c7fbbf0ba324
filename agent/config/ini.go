package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DefaultGroup is the name of the section whose options belong to no group.
// oslo.config compares it case-sensitively: "[default]" is an ordinary group
// called "default", not this one.
const DefaultGroup = "DEFAULT"

// ErrSyntax is wrapped by every *ParseError, so callers can tell a malformed
// file from a missing one with errors.Is.
var ErrSyntax = errors.New("config syntax error")

// ParseError reports a malformed line, naming the file and the 1-based line
// number the way an operator needs to fix it.
type ParseError struct {
	File string
	Line int
	Msg  string
	Text string
}

// Error implements error as "file:line: message: \"text\"".
func (e *ParseError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Msg, e.Text)
}

// Unwrap makes errors.Is(err, ErrSyntax) true.
func (e *ParseError) Unwrap() error { return ErrSyntax }

// Value is one assignment as written in a file, with where it was written so
// that a later type or validation error can point at it.
type Value struct {
	Text string
	File string
	Line int
}

// Where returns "file:line" for messages.
func (v Value) Where() string { return fmt.Sprintf("%s:%d", v.File, v.Line) }

// File is one parsed INI file: group → option → the values assigned to it,
// in file order. Repeating a key appends (that is how multi-valued options are
// written); for a single-valued option the last one wins.
type File struct {
	Name   string
	groups map[string]map[string][]Value
}

// Groups returns the (normalized) group names present in the file.
func (f *File) Groups() []string {
	out := make([]string, 0, len(f.groups))
	for g := range f.groups {
		out = append(out, g)
	}
	return out
}

// Values returns every value assigned to group/key in this file.
func (f *File) Values(group, key string) []Value {
	return f.groups[normalizeGroup(group)][key]
}

// normalizeGroup lower-cases every group name except DEFAULT, as oslo.config
// does, so "[OVS]" and "[ovs]" (both found in the wild for neutron's agent)
// name the same group.
func normalizeGroup(g string) string {
	if g == DefaultGroup {
		return g
	}
	return strings.ToLower(g)
}

// ParseFile reads and parses one configuration file.
func ParseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config file: %w", err)
	}
	defer fh.Close()
	f, err := Parse(path, fh)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Parse parses oslo.config INI text. It follows oslo_config.iniparser line
// for line where behaviour is observable:
//   - a line starting with '#' or ';' is a comment; inline comments are NOT
//     stripped ("a = b # c" has the value "b # c");
//   - a line starting with a space or tab continues the previous value (joined
//     with "\n"); a blank line or any unindented line ends it;
//   - "key = value" or "key: value", whichever separator comes first; the value
//     is trimmed and one pair of matching surrounding quotes removed;
//   - an assignment before any "[section]" header is an error.
//
// Every error is a *ParseError naming name:line.
func Parse(name string, r io.Reader) (*File, error) {
	f := &File{Name: name, groups: map[string]map[string][]Value{}}
	sc := bufio.NewScanner(r)
	// nova.conf values (e.g. PEM certificates or long transport URLs) can be
	// long; a 1 MiB line limit is generous without being unbounded.
	sc.Buffer(make([]byte, 64*1024), 1<<20)

	var (
		section  string
		haveSect bool
		key      string
		keyLine  int
		value    []string
		lineno   int
	)
	perr := func(msg, text string) error {
		return &ParseError{File: name, Line: lineno, Msg: msg, Text: text}
	}
	flush := func() error {
		if key == "" {
			return nil
		}
		if !haveSect {
			return &ParseError{File: name, Line: keyLine, Msg: "section must be started before assignment"}
		}
		g := f.groups[section]
		g[key] = append(g[key], Value{Text: strings.Join(value, "\n"), File: name, Line: keyLine})
		key, value = "", nil
		return nil
	}

	for sc.Scan() {
		lineno++
		line := strings.TrimRight(sc.Text(), " \t\r\n\f\v")
		if lineno == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		switch {
		case line == "":
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		case line[0] == ' ' || line[0] == '\t':
			if key == "" {
				return nil, perr("unexpected continuation line", line)
			}
			value = append(value, strings.TrimLeft(line, " \t"))
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		switch {
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, perr("invalid section (must end with ])", line)
			}
			if len(line) <= 2 {
				return nil, perr("empty section name", line)
			}
			section = normalizeGroup(line[1 : len(line)-1])
			haveSect = true
			if f.groups[section] == nil {
				f.groups[section] = map[string][]Value{}
			}
		case line[0] == '#' || line[0] == ';':
			// comment
		default:
			k, v, err := splitKeyValue(line)
			if err != "" {
				return nil, perr(err, line)
			}
			key, keyLine, value = k, lineno, []string{v}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s near line %d: %w", name, lineno+1, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return f, nil
}

// splitKeyValue returns the key and value of an assignment line, or a
// non-empty message when the line is not one.
func splitKeyValue(line string) (string, string, string) {
	colon := strings.IndexByte(line, ':')
	equal := strings.IndexByte(line, '=')
	if colon < 0 && equal < 0 {
		return "", "", "no ':' or '=' found in assignment"
	}
	var k, v string
	if colon < 0 || (equal >= 0 && equal < colon) {
		k, v = line[:equal], line[equal+1:]
	} else {
		k, v = line[:colon], line[colon+1:]
	}
	k = strings.TrimSpace(k)
	v = strings.TrimSpace(v)
	if len(v) > 0 && v[0] == v[len(v)-1] && (v[0] == '"' || v[0] == '\'') {
		if len(v) == 1 {
			v = ""
		} else {
			v = v[1 : len(v)-1]
		}
	}
	if k == "" {
		return "", "", "key cannot be empty"
	}
	return k, v, ""
}

// Files is an ordered set of parsed files; later files override earlier ones,
// exactly as several --config-file arguments do.
type Files []*File

// Lookup returns the effective value of a single-valued option: the last
// value in the last file that sets it.
func (fs Files) Lookup(group, key string) (Value, bool) {
	for i := len(fs) - 1; i >= 0; i-- {
		if vs := fs[i].Values(group, key); len(vs) > 0 {
			return vs[len(vs)-1], true
		}
	}
	return Value{}, false
}

// LookupMulti returns every value of a multi-valued option across all files,
// earlier files first (oslo.config concatenates, it does not override).
func (fs Files) LookupMulti(group, key string) []Value {
	var out []Value
	for _, f := range fs {
		out = append(out, f.Values(group, key)...)
	}
	return out
}
