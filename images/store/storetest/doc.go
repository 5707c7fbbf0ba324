// Package storetest holds an in-memory store.Engine and the conformance suite
// that both it and the Docker-backed engine must pass, so tests of the image
// store run without a daemon yet against an engine that behaves like Docker:
// an image appears under its tag only after the whole tar archive was read, a
// used image cannot be removed, labels and config round-trip.
//
//	eng := storetest.NewEngine()
//	st, _ := store.New(eng, conv, store.Options{})
//	storetest.RunEngineSuite(t, func(t *testing.T) store.Engine { return storetest.NewEngine() }, pin)
package storetest
