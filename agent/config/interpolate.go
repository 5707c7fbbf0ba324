package config

import (
	"fmt"
	"strings"
)

// maxInterpolationDepth bounds $var chains; a deeper chain is almost certainly
// a cycle the stack check missed through a differently spelled reference.
const maxInterpolationDepth = 32

// resolver turns raw file text into effective option text: file value or
// default, then "$var"/"${var}" substitution with oslo.config's lookup rules.
type resolver struct {
	files Files
	reg   registry
}

// rawValue returns the effective text of a registered single-valued option
// before substitution, and whether it is set at all (a default of None is
// "not set").
func (r *resolver) rawValue(group, key string) (Value, bool) {
	if v, ok := r.files.Lookup(group, key); ok {
		return v, true
	}
	spec := r.reg.find(group, key)
	if spec == nil || !spec.hasDefault {
		return Value{}, false
	}
	return Value{Text: spec.def, File: "default", Line: 0}, true
}

// substitute expands $name, ${name}, $group.name and ${group.name} in text,
// evaluated in the context of group. Like oslo.config (cfg.py
// ConfigOpts._substitute and StrSubWrapper):
//   - "$$" and "\$" produce a literal "$";
//   - a bare name is looked up as an option of the current group first and,
//     if the group has no such option, as an option of [DEFAULT] — this is
//     the only way [DEFAULT] "inherits" into other groups;
//   - an option whose value is None substitutes as the empty string;
//   - a name that is no known option is an error (oslo raises NoSuchOptError);
//   - a "$" not followed by a name is left as it is;
//   - substituted values are themselves substituted.
func (r *resolver) substitute(text, group string, stack []string) (string, error) {
	if !strings.Contains(text, "$") {
		return text, nil
	}
	if len(stack) > maxInterpolationDepth {
		return "", fmt.Errorf("interpolation deeper than %d levels: %s", maxInterpolationDepth, strings.Join(stack, " -> "))
	}
	text = strings.ReplaceAll(text, `\$`, "$$")
	var b strings.Builder
	for i := 0; i < len(text); {
		c := text[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		rest := text[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			name := ""
			if end > 0 {
				name = rest[1:end]
			}
			if end < 0 || identLen(name) != len(name) || name == "" {
				b.WriteByte('$') // not a valid braced name: left alone
				i++
				continue
			}
			v, err := r.lookupVar(name, group, stack)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += 1 + end + 1
		default:
			n := identLen(rest)
			if n == 0 {
				b.WriteByte('$')
				i++
				continue
			}
			v, err := r.lookupVar(rest[:n], group, stack)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += 1 + n
		}
	}
	return b.String(), nil
}

// identLen returns the length of the longest prefix of s matching Python's
// string.Template id pattern as oslo sets it: [_a-z][._a-z0-9]*, case-insensitive.
func identLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z')
		if i == 0 && !alpha {
			return 0
		}
		if !alpha && c != '.' && !(c >= '0' && c <= '9') {
			return i
		}
	}
	return len(s)
}

// lookupVar resolves one variable reference.
func (r *resolver) lookupVar(name, group string, stack []string) (string, error) {
	g, k := group, name
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		g, k = normalizeGroup(name[:dot]), name[dot+1:]
		if r.reg.find(g, k) == nil {
			return "", fmt.Errorf("$%s: no option %q in group [%s]", name, k, g)
		}
	} else if r.reg.find(g, k) == nil {
		if r.reg.find(DefaultGroup, k) == nil {
			return "", fmt.Errorf("$%s: no such option in [%s] or [DEFAULT]", name, group)
		}
		g = DefaultGroup
	}
	id := g + "." + k
	for _, s := range stack {
		if s == id {
			return "", fmt.Errorf("$%s: interpolation cycle %s -> %s", name, strings.Join(stack, " -> "), id)
		}
	}
	if r.reg.find(g, k).multi {
		return "", fmt.Errorf("$%s: cannot substitute the multi-valued option %s", name, id)
	}
	v, ok := r.rawValue(g, k)
	if !ok {
		return "", nil
	}
	out, err := r.substitute(v.Text, g, append(stack, id))
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", id, v.Where(), err)
	}
	return out, nil
}
