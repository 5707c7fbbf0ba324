package storetest

import (
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/store"
)

func TestEngineConformance(t *testing.T) {
	RunEngineSuite(t, func(*testing.T) store.Engine { return NewEngine() },
		func(t *testing.T, eng store.Engine, ref string) func() {
			e := eng.(*Engine)
			if err := e.CreateContainer("c-"+t.Name(), ref); err != nil {
				t.Fatalf("CreateContainer: %v", err)
			}
			return func() { e.RemoveContainer("c-" + t.Name()) }
		})
}
