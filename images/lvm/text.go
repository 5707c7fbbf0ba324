package lvm

import (
	"fmt"
	"strconv"
	"strings"
)

// Bounds on the metadata text. LVM's own metadata for hundreds of LVs stays far below them;
// they exist so hostile text cannot cost unbounded time or memory.
const (
	maxTextSize = 1 << 20 // bytes of one metadata text
	maxDepth    = 16      // nested sections (a VG needs 4: vg, logical_volumes, lv, segment)
	maxNodes    = 1 << 18 // keys, sections and array elements in one text
)

// valueKind says what a configuration value is.
type valueKind int

const (
	kindString valueKind = iota + 1
	kindNumber
	kindArray
)

// value is the right-hand side of `key = value`: a string, a number (kept as its text, LVM
// writes integers but the grammar allows floats) or a flat array of those.
type value struct {
	kind  valueKind
	str   string // the string, or the number's text
	items []value
}

// section is `name { ... }`, or the whole text (name ""). Keys and subsections keep their
// order; a name appears at most once among them.
type section struct {
	name     string
	keys     map[string]value
	sections []*section
	byName   map[string]*section
}

func newSection(name string) *section {
	return &section{name: name, keys: map[string]value{}, byName: map[string]*section{}}
}

// sub returns the subsection called name, or nil.
func (s *section) sub(name string) *section { return s.byName[name] }

// str returns key's value if it is a string.
func (s *section) str(key string) (string, bool) {
	v, ok := s.keys[key]
	if !ok || v.kind != kindString {
		return "", false
	}
	return v.str, true
}

// int returns key's value if it is an integer.
func (s *section) int(key string) (int64, bool) {
	v, ok := s.keys[key]
	if !ok || v.kind != kindNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(v.str, 10, 64)
	return n, err == nil
}

// strings returns key's value if it is an array of strings (a missing key is an empty list).
func (s *section) strings(key string) ([]string, bool) {
	v, ok := s.keys[key]
	if !ok {
		return nil, true
	}
	if v.kind != kindArray {
		return nil, false
	}
	out := make([]string, 0, len(v.items))
	for _, it := range v.items {
		if it.kind != kindString {
			return nil, false
		}
		out = append(out, it.str)
	}
	return out, true
}

// parseText parses LVM's metadata text format:
//
//	file    = { item }
//	item    = name "=" value | name "{" { item } "}"
//	value   = string | number | "[" [ scalar { "," scalar } ] "]"
//
// with "#" comments to the end of the line and strings in double quotes with backslash
// escapes. Errors say the line.
func parseText(text []byte) (*section, error) {
	if len(text) > maxTextSize {
		return nil, fmt.Errorf("metadata text of %d bytes exceeds %d", len(text), maxTextSize)
	}
	p := &parser{src: text, line: 1}
	root := newSection("")
	if err := p.items(root, 0); err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tokEOF {
		return nil, p.errorf("unexpected %s at top level", t)
	}
	return root, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokName
	tokString
	tokPunct
	tokBad
)

type token struct {
	kind tokKind
	text string
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of text"
	case tokString:
		return fmt.Sprintf("string %q", t.text)
	case tokBad:
		return fmt.Sprintf("bad token (%s)", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type parser struct {
	src    []byte
	pos    int
	line   int
	nodes  int
	peeked *token
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("metadata text line %d: %s", p.line, fmt.Sprintf(format, args...))
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-' || c == '+'
}

func (p *parser) peek() token {
	if p.peeked == nil {
		t := p.lex()
		p.peeked = &t
	}
	return *p.peeked
}

func (p *parser) next() token {
	t := p.peek()
	p.peeked = nil
	return t
}

func (p *parser) lex() token {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == 0:
			// LVM ends the text with a NUL; tolerate NULs as blanks.
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '=' || c == '{' || c == '}' || c == '[' || c == ']' || c == ',':
			p.pos++
			return token{kind: tokPunct, text: string(c)}
		case c == '"':
			return p.lexString()
		case isNameByte(c):
			start := p.pos
			for p.pos < len(p.src) && isNameByte(p.src[p.pos]) {
				p.pos++
			}
			return token{kind: tokName, text: string(p.src[start:p.pos])}
		default:
			p.pos++
			return token{kind: tokBad, text: fmt.Sprintf("byte %#x", c)}
		}
	}
	return token{kind: tokEOF}
}

func (p *parser) lexString() token {
	p.pos++ // opening quote
	var sb strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		p.pos++
		switch c {
		case '"':
			return token{kind: tokString, text: sb.String()}
		case '\\':
			if p.pos < len(p.src) {
				c = p.src[p.pos]
				p.pos++
			}
		case '\n':
			p.line++
		}
		sb.WriteByte(c)
	}
	return token{kind: tokBad, text: "unterminated string"}
}

func (p *parser) count() error {
	p.nodes++
	if p.nodes > maxNodes {
		return p.errorf("more than %d nodes", maxNodes)
	}
	return nil
}

// items reads items into s until "}" (depth > 0) or the end of the text (depth 0).
func (p *parser) items(s *section, depth int) error {
	for {
		t := p.peek()
		if t.kind == tokEOF || (t.kind == tokPunct && t.text == "}") {
			return nil
		}
		p.next()
		if t.kind != tokName {
			return p.errorf("expected a name, found %s", t)
		}
		if err := p.count(); err != nil {
			return err
		}
		if _, dup := s.keys[t.text]; dup || s.byName[t.text] != nil {
			return p.errorf("%q given twice in section %q", t.text, s.name)
		}
		op := p.next()
		switch {
		case op.kind == tokPunct && op.text == "=":
			v, err := p.value()
			if err != nil {
				return fmt.Errorf("%s: %w", t.text, err)
			}
			s.keys[t.text] = v
		case op.kind == tokPunct && op.text == "{":
			if depth+1 > maxDepth {
				return p.errorf("sections nested deeper than %d", maxDepth)
			}
			sub := newSection(t.text)
			if err := p.items(sub, depth+1); err != nil {
				return err
			}
			if c := p.next(); c.kind != tokPunct || c.text != "}" {
				return p.errorf("section %q not closed: found %s", t.text, c)
			}
			s.sections = append(s.sections, sub)
			s.byName[t.text] = sub
		default:
			return p.errorf("after %q expected = or {, found %s", t.text, op)
		}
	}
}

func (p *parser) scalar() (value, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return value{kind: kindString, str: t.text}, nil
	case tokName:
		if _, err := strconv.ParseFloat(t.text, 64); err != nil {
			return value{}, p.errorf("%q is neither a number nor a quoted string", t.text)
		}
		return value{kind: kindNumber, str: t.text}, nil
	}
	return value{}, p.errorf("expected a value, found %s", t)
}

func (p *parser) value() (value, error) {
	if t := p.peek(); t.kind != tokPunct || t.text != "[" {
		return p.scalar()
	}
	p.next()
	arr := value{kind: kindArray}
	if t := p.peek(); t.kind == tokPunct && t.text == "]" {
		p.next()
		return arr, nil
	}
	for {
		if err := p.count(); err != nil {
			return value{}, err
		}
		v, err := p.scalar()
		if err != nil {
			return value{}, err
		}
		arr.items = append(arr.items, v)
		switch t := p.next(); {
		case t.kind == tokPunct && t.text == ",":
		case t.kind == tokPunct && t.text == "]":
			return arr, nil
		default:
			return value{}, p.errorf("in array expected , or ], found %s", t)
		}
	}
}
