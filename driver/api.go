package driver

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// DockerAPI is the part of the Docker Engine API the driver calls. The real
// *client.Client satisfies it directly; drivertest.Fake is the in-memory
// stand-in, and both pass drivertest's conformance suite.
type DockerAPI interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageImport(ctx context.Context, source client.ImageImportSource, ref string, options client.ImageImportOptions) (client.ImageImportResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, containerID string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerKill(ctx context.Context, containerID string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerRestart(ctx context.Context, containerID string, options client.ContainerRestartOptions) (client.ContainerRestartResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerUpdate(ctx context.Context, containerID string, options client.ContainerUpdateOptions) (client.ContainerUpdateResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerPause(ctx context.Context, containerID string, options client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, containerID string, options client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerLogs(ctx context.Context, containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerStats(ctx context.Context, containerID string, options client.ContainerStatsOptions) (client.ContainerStatsResult, error)
	ContainerExport(ctx context.Context, containerID string, options client.ContainerExportOptions) (client.ContainerExportResult, error)
	CopyToContainer(ctx context.Context, containerID string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error)
	CopyFromContainer(ctx context.Context, containerID string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

var _ DockerAPI = (*client.Client)(nil)

// Sentinel errors returned by the driver; test them with errors.Is.
var (
	// ErrNotFound: the instance (or the named container) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Spawn found containers of that instance already.
	ErrExists = errors.New("already exists")
	// ErrConflict: Docker refused the operation in the current state.
	ErrConflict = errors.New("conflict with container state")
	// ErrNotRunning: the operation needs a running instance or sandbox.
	ErrNotRunning = errors.New("not running")
	// ErrDaemon: the Docker daemon is unusable for this driver (API too
	// old, cgroup version unsupported, unreachable).
	ErrDaemon = errors.New("docker daemon unsuitable")
	// ErrLXCFS: lxcfs is required (WithRequireLXCFS) but not mounted.
	ErrLXCFS = errors.New("lxcfs unavailable")
	// ErrUnsupported: the host cannot do what was asked.
	ErrUnsupported = errors.New("unsupported")
)

// MinAPIVersion is the oldest Engine API the driver speaks: Debian 12's
// docker.io 20.10. HostConfig fields newer than it are never sent.
const MinAPIVersion = "1.41"

// translate maps Docker errors onto the driver's sentinels, keeping the
// original in the chain.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %w", what, ErrNotFound, err)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%s: %w: %w", what, ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
