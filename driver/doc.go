// Package driver runs each nova instance as one VM-like Docker container.
//
// It talks to dockerd through DockerAPI, a narrow interface that the real
// github.com/moby/moby/client satisfies directly and that drivertest.Fake
// implements in memory; both pass drivertest.Conformance. New pings the
// daemon with API-version negotiation and refuses anything older than
// MinAPIVersion (1.41, Debian 12's docker.io 20.10) with ErrDaemon, so a
// mismatch fails at start-up, not at the first boot. The new client no
// longer strips request fields an old daemon does not know, so the specs
// built by driver/spec only use HostConfig fields that exist in API 1.41,
// and the driver never sends the stop/restart "signal" parameter (1.42):
// the container's own StopSignal is used instead.
//
// # Two containers per instance
//
// A tiny sandbox container (network mode none, restart policy
// unless-stopped, a 129-byte static pause binary as PID 1) owns the
// instance's network namespace, hostname and resolv.conf. The instance
// container joins it with NetworkMode "container:<sandbox>". Spawn starts
// the sandbox, calls the PlugFunc with /proc/<sandbox pid>/ns/net so the
// ports are wired in, and only then creates and starts the instance: the
// guest's PID 1 never runs without its interfaces. Because the namespace
// belongs to the sandbox, everything that restarts only the instance
// container — an in-guest reboot, docker restart, a soft or hard reboot,
// a rebuild with a new image — keeps the namespace, its veths and their
// addresses. SandboxNetNS returns the path for the port-plugging code.
// The driver records which sandbox incarnation (pid and start time) it last
// plugged; PowerOn, Reboot and Rebuild call the PlugFunc again whenever the
// sandbox is a new one — started by the driver, or brought back by dockerd's
// restart policy after a host reboot with an empty namespace.
//
// The sandbox image is imported (docker import) from a tar built in memory:
// there is no registry. See sandboximage.go for why a hand-assembled binary
// is used rather than a Go helper or the agent's own binary.
//
// # dockerd restarts and live-restore
//
// Without "live-restore": true in /etc/docker/daemon.json, stopping or
// upgrading dockerd stops every container: all guests power off, and when
// dockerd comes back the unless-stopped sandboxes restart with fresh, empty
// namespaces while the instances stay down, so every port must be re-plugged
// and every guest rebooted — nova's power-state sync would meanwhile see
// SHUTDOWN and call the stop API. With live-restore, containers keep running
// while dockerd is away and are re-attached when it returns: guests, their
// namespaces and their ports are untouched. Watch re-opens the event stream
// from the last event it saw, so nothing is missed across the gap.
// (Events that happen while dockerd is down, such as a guest rebooting
// itself, are seen when dockerd reaps the process after it returns.)
//
// # The instance container
//
// /sbin/init is PID 1 (Entrypoint, so an image Cmd is never appended), with
// a private cgroup namespace, a tmpfs on /sys/fs/cgroup and CAP_SYS_ADMIN so
// systemd mounts its own cgroup v1 hierarchies inside the namespace. The
// alternative that needs no SYS_ADMIN — bind-mounting the host's
// /sys/fs/cgroup read-only — leaves every controller hierarchy of the host
// writable by the guest's root (the :ro applies to the tmpfs only), so the
// guest could lift its own or other instances' limits. It is never
// privileged: seccomp and the device cgroup stay on, SYS_MODULE, SYS_TIME,
// SYS_RAWIO, NET_ADMIN, DAC_READ_SEARCH and other dangerous capabilities are
// dropped explicitly, and SYS_BOOT is added so reboot(2) inside the pid
// namespace ends PID 1 with exit 129 (reboot) or 130 (poweroff) instead of 0
// for both; it cannot reach the host.
//
// Flavor limits are set twice: on the container's own cgroup by Docker
// (memory = memory+swap, CFS quota = vCPUs, a cpuset, pids), which is what
// lxcfs and docker stats read, and on a per-instance parent cgroup
// (<root>/<uuid>, HostCgroupsV1) that the guest cannot see — with SYS_ADMIN
// and no delegation protection in cgroup v1, root inside could raise the
// limits of its own cgroup but never those of its parent.
//
// lxcfs files are bind-mounted over /proc/{cpuinfo,diskstats,loadavg,
// meminfo,stat,swaps,uptime} and /sys/devices/system/cpu/online. If lxcfs is
// not mounted the instance still boots (with a warning) unless
// WithRequireLXCFS is set: the limits are enforced either way, and failing
// builds because a host daemon is down would bounce users across the cloud.
// If lxcfs dies while instances run, their overlaid files fail with
// "Transport endpoint is not connected" until each guest is restarted.
//
// The root disk size is enforced only where dockerd can (overlay2 on xfs
// mounted with pquota); Capabilities reports it, and on overlay2 over ext4
// (this project's hosts) root_gb is NOT enforced.
//
// # Power states
//
// GetState maps Docker's state to nova's power_state: running → RUNNING,
// paused → PAUSED (SUSPENDED when suspended), created → SHUTDOWN, exited
// with 130 or 0 or after an agent PowerOff → SHUTDOWN, 129 → NOSTATE while
// the driver restarts it, OOM or any other exit → CRASHED, missing →
// NOSTATE. Suspend freezes the guest like Pause (no checkpointing exists
// here): RAM stays charged, every process and connection survives, and
// Resume thaws it.
//
// Example:
//
//	cli, _ := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
//	d, err := driver.New(ctx, cli)
//	err = d.Spawn(ctx, inst, func(ctx context.Context, netns string) error {
//		_, err := plumber.Plug(ctx, netns, plan) // driver/vif
//		return err
//	})
//	go d.Watch(ctx, func(ev driver.Event) { syncPowerState(ev) })
package driver
