// Package driver runs each nova instance as one VM-like Docker container.
package driver
