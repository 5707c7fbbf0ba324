package driver

import "testing"

// FuzzParseNetDev: /proc/<pid>/net/dev is kernel text, but interface names
// are chosen by whoever plugs ports; the parser must never panic.
func FuzzParseNetDev(f *testing.F) {
	f.Add([]byte("  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"))
	f.Add([]byte("x:\n:1\nlo: 1 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range ParseNetDev(data) {
			if n.Name == "" || n.Name == "lo" {
				t.Fatalf("bad entry %+v", n)
			}
		}
	})
}
