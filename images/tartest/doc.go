// Package tartest reads tar layers into comparable entry sets and diffs them, so a converted
// image layer can be checked entry for entry against GNU tar of the source tree:
//
//	want, _ := tartest.ReadFile("gnu.tar")   // tar --numeric-owner --xattrs --xattrs-include='*' -C src -cf gnu.tar .
//	got, _ := tartest.Read(convertedLayer)
//	for _, d := range tartest.Compare(want, got, tartest.Options{}) { t.Error(d) }
//
// Names are normalised ("./etc/" and "etc" are the same entry, the root is "."), hard links are
// compared as groups of names sharing one inode (which name tar wrote first does not matter), and
// content is compared by SHA-256 without keeping it in memory.
package tartest
