package drivertest

import "testing"

func TestFakeConformance(t *testing.T) {
	Conformance(t, NewFake())
}
