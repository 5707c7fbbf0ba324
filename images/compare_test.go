package images

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// TestCompareLayers diffs two tar layers given by the environment, e.g. the converter's output
// for a full Debian image against GNU tar of the tree it was built from:
//
//	NCA_COMPARE_WANT=gnu.tar NCA_COMPARE_GOT=layer.tar go test -run TestCompareLayers ./images/
//
// NCA_COMPARE_SKIP is a comma-separated list of names (and their subtrees) to leave out.
func TestCompareLayers(t *testing.T) {
	wantPath, gotPath := os.Getenv("NCA_COMPARE_WANT"), os.Getenv("NCA_COMPARE_GOT")
	if wantPath == "" || gotPath == "" {
		t.Skip("set NCA_COMPARE_WANT and NCA_COMPARE_GOT to two tar files to compare")
	}
	want, err := tartest.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tartest.ReadFile(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	var skips []string
	if s := os.Getenv("NCA_COMPARE_SKIP"); s != "" {
		skips = strings.Split(s, ",")
	}
	opts := tartest.Options{MtimePrecision: time.Second, Skip: func(n string) bool {
		for _, s := range skips {
			if n == s || strings.HasPrefix(n, s+"/") {
				return true
			}
		}
		return false
	}}
	diffs := tartest.Compare(want, got, opts)
	for i, d := range diffs {
		if i == 50 {
			t.Errorf("… and %d more", len(diffs)-50)
			break
		}
		t.Error(d)
	}
	t.Logf("compared %d reference entries with %d produced entries: %d differences", len(want), len(got), len(diffs))
}
