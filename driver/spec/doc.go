// Package spec turns an instance description into Docker create configurations.
//
// It is pure: no I/O, no clock, no Docker client. Everything the driver later
// sends to dockerd in one ContainerCreate call (the per-instance network
// sandbox and the VM-like instance container), the cgroup-parent limits the
// driver writes on the host, and the small tar archives it copies into a
// created container (authorized_keys) are computed here, so they can be
// reviewed and table-tested without a daemon.
//
// The instance container follows the flags proven on this project's hosts
// (Docker 20.10, cgroup v1, cgroupfs driver): /sbin/init as PID 1, a private
// cgroup namespace with a tmpfs on /sys/fs/cgroup and CAP_SYS_ADMIN so systemd
// mounts its own namespaced hierarchies (the alternative, bind-mounting the
// host's /sys/fs/cgroup, leaves every host cgroup writable by the guest's
// root), tmpfs /run, /run/lock and /tmp, SIGRTMIN+3 as stop signal, and
// CAP_SYS_BOOT so an in-guest reboot (exit 129) and poweroff (exit 130) can be
// told apart. It is never privileged.
//
// Example:
//
//	inst := spec.Instance{UUID: id, Hostname: "vm1", Image: "nca/img:abc",
//		Flavor: spec.Flavor{Name: "m1.small", VCPUs: 1, MemoryMB: 512}}
//	opts := spec.DefaultOptions()
//	sb, err := spec.Sandbox(inst, opts)
//	ct, err := spec.Container(inst, opts)
//	// ContainerCreate(sb), start it, plug the network, ContainerCreate(ct), start it.
package spec
