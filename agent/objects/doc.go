// Package objects encodes and decodes oslo.versionedobjects primitives and models the nova objects
// a compute host exchanges with nova-conductor.
package objects
