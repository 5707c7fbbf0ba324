package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// kv is one member of an ordered JSON object.
type kv struct {
	Key   string
	Value any
}

// object is a JSON object whose members keep their order. Python dicts keep insertion order and
// oslo builds its messages in a fixed order, so emitting the same order is what makes our bytes
// equal to Python's for the parts oslo itself constructs (envelope, reply, failure, message keys).
type object []kv

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := marshalCompact(m.Key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		v, err := marshalCompact(m.Value)
		if err != nil {
			return nil, fmt.Errorf("encode key %q: %w", m.Key, err)
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshalCompact is json.Marshal without HTML escaping (Python never escapes <, > and &).
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// pyDumps encodes v the way Python's json.dumps does with its defaults (what oslo's
// jsonutils.dumps calls): separators ", " and ": ", and ensure_ascii, i.e. every non-ASCII
// character written as \uXXXX (astral characters as a surrogate pair).
//
// Numbers are written as Go writes them; a Python float that happens to be integral (1.0) cannot
// be told apart from an int once it is a Go float64, which is the one place bytes may differ.
func pyDumps(v any) ([]byte, error) {
	compact, err := marshalCompact(v)
	if err != nil {
		return nil, err
	}
	return pythonize(compact), nil
}

// pythonize rewrites compact JSON produced by encoding/json into Python's default layout.
func pythonize(compact []byte) []byte {
	out := make([]byte, 0, len(compact)+len(compact)/8)
	inString := false
	for i := 0; i < len(compact); {
		c := compact[i]
		if inString {
			switch {
			case c == '\\':
				// Copy the escape verbatim (\", \\, \n, \uXXXX); Go and Python agree on them.
				end := i + 2
				if i+1 < len(compact) && compact[i+1] == 'u' {
					end = i + 6
				}
				if end > len(compact) {
					end = len(compact)
				}
				out = append(out, compact[i:end]...)
				i = end
				continue
			case c == '"':
				inString = false
			case c >= utf8.RuneSelf:
				r, size := utf8.DecodeRune(compact[i:])
				out = appendPyEscape(out, r)
				i += size
				continue
			}
			out = append(out, c)
			i++
			continue
		}
		switch c {
		case '"':
			inString = true
			out = append(out, c)
		case ',':
			out = append(out, ',', ' ')
		case ':':
			out = append(out, ':', ' ')
		default:
			out = append(out, c)
		}
		i++
	}
	return out
}

const hexDigits = "0123456789abcdef"

func appendPyEscape(out []byte, r rune) []byte {
	if r > 0xFFFF {
		r -= 0x10000
		out = appendU(out, 0xD800+(r>>10))
		return appendU(out, 0xDC00+(r&0x3FF))
	}
	return appendU(out, r)
}

func appendU(out []byte, r rune) []byte {
	return append(out, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
