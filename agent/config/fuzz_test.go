package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that no input panics the parser or the binder, and that
// every rejection is a *ParseError naming a line inside the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[DEFAULT]\nhost = a\n  cont\n",
		"[ovs]\nbridge_mappings = a:b,c:d\n[DEFAULT]\ninstances_path = ${state_path}/x$$\n",
		"x=1", "[\n", "[]\n", "[DEFAULT]\n\t\n a\n", "[DEFAULT]\nhost: \"\n",
		"[DEFAULT]\nstate_path = $instances_path\ninstances_path = $state_path\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		file, err := Parse("fuzz.conf", strings.NewReader(s))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				return // scanner errors (over-long line) are plain wrapped errors
			}
			if pe.Line < 1 || pe.Line > strings.Count(s, "\n")+1 {
				t.Fatalf("line %d outside input: %v", pe.Line, err)
			}
			return
		}
		_, _ = FromFiles(Files{file}, fixedEnv()...)
	})
}
