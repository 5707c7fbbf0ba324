package store

import (
	"context"
	"io"
	"time"
)

// Engine is what the store needs from a container engine. *Docker implements it
// against the Docker Engine API; storetest.Engine is an in-memory one. Both pass
// storetest.RunEngineSuite.
type Engine interface {
	// Ping checks that the engine answers and speaks an API version we support.
	Ping(ctx context.Context) error
	// ImportImage creates an image from a tar stream of a root filesystem and
	// tags it ref. The image exists under ref only if the whole stream was read
	// without error. It returns the image id.
	ImportImage(ctx context.Context, tar io.Reader, ref string, cfg ImageConfig) (string, error)
	// InspectImage returns the image ref (a tag or an id) names, or ErrNotFound.
	InspectImage(ctx context.Context, ref string) (ImageInfo, error)
	// ListImages returns the images carrying label key with value val.
	ListImages(ctx context.Context, key, val string) ([]ImageInfo, error)
	// ImagesInUse returns the ids of images any container (running or not) uses.
	ImagesInUse(ctx context.Context) (map[string]bool, error)
	// RemoveImage deletes an image by id, or returns ErrInUse when a container
	// uses it, or ErrNotFound.
	RemoveImage(ctx context.Context, id string) error
}

// ImageConfig is the runtime configuration baked into an imported image.
type ImageConfig struct {
	// Cmd is the image's CMD, e.g. ["/sbin/init"].
	Cmd []string
	// Env holds KEY=value entries.
	Env []string
	// StopSignal is the signal `docker stop` sends, e.g. SIGRTMIN+3 for systemd.
	StopSignal string
	// Labels are image labels; the store keeps its index in them.
	Labels map[string]string
}

// ImageInfo is what the store reads back about an image.
type ImageInfo struct {
	// ID is the engine's image id (sha256:…).
	ID string
	// Tags are the repo:tag references pointing at the image.
	Tags []string
	// Labels are the image labels.
	Labels map[string]string
	// Size is the image size in bytes as the engine reports it.
	Size int64
	// Created is when the image was created.
	Created time.Time
	// Cmd, Env and StopSignal echo the image configuration.
	Cmd        []string
	Env        []string
	StopSignal string
}
