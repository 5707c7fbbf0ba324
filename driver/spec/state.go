package spec

// PowerState is nova's power_state integer (nova/compute/power_state.py).
type PowerState int

// Nova power states.
const (
	NoState   PowerState = 0
	Running   PowerState = 1
	Paused    PowerState = 3
	Shutdown  PowerState = 4
	Crashed   PowerState = 6
	Suspended PowerState = 7
)

// String returns nova's name of the state.
func (p PowerState) String() string {
	switch p {
	case NoState:
		return "NOSTATE"
	case Running:
		return "RUNNING"
	case Paused:
		return "PAUSED"
	case Shutdown:
		return "SHUTDOWN"
	case Crashed:
		return "CRASHED"
	case Suspended:
		return "SUSPENDED"
	}
	return "UNKNOWN"
}

// Exit codes of PID 1 that carry meaning. With CAP_SYS_BOOT, reboot(2) in a
// child pid namespace kills its init with SIGHUP (reboot) or SIGINT
// (poweroff/halt), which Docker reports as 128+signal.
const (
	ExitReboot   = 129
	ExitPoweroff = 130
)

// Reason explains a PowerState.
type Reason string

// Reasons reported with a state.
const (
	ReasonNone         Reason = ""
	ReasonPoweroff     Reason = "guest-poweroff"  // exit 130 or 0: clean shutdown
	ReasonReboot       Reason = "guest-reboot"    // exit 129: restart pending
	ReasonCrashed      Reason = "crashed"         // any other exit code
	ReasonOOMKilled    Reason = "oom-killed"      // the kernel killed PID 1 for memory
	ReasonNeverStarted Reason = "created"         // created, never started
	ReasonMissing      Reason = "missing"         // no container
	ReasonSandboxDown  Reason = "sandbox-stopped" // instance runs but its netns owner is gone
)

// ContainerState is the part of a docker inspect the mapping reads.
type ContainerState struct {
	Exists     bool
	Status     string // created, running, paused, restarting, removing, exited, dead
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	ExitCode   int
	// Suspended is the driver's own marker: a paused container the
	// operator suspended rather than paused.
	Suspended bool
	// AgentStopped is the driver's marker for a container it powered off
	// itself: a SIGKILL after the clean-shutdown timeout (exit 137) is then
	// still a SHUTDOWN, not a crash.
	AgentStopped bool
}

// MapState turns a container state into nova's power state and a reason.
func MapState(s ContainerState) (PowerState, Reason) {
	switch {
	case !s.Exists:
		return NoState, ReasonMissing
	case s.Paused && s.Suspended:
		return Suspended, ReasonNone
	case s.Paused:
		return Paused, ReasonNone
	case s.Running || s.Restarting:
		return Running, ReasonNone
	case s.Status == "created":
		return Shutdown, ReasonNeverStarted
	case s.AgentStopped:
		return Shutdown, ReasonPoweroff
	case s.OOMKilled:
		return Crashed, ReasonOOMKilled
	case s.ExitCode == ExitReboot:
		// The driver restarts the container; in the gap nova must not see
		// SHUTDOWN (its power-state sync would call the stop API), and
		// NOSTATE is what it tolerates for a transient hypervisor state.
		return NoState, ReasonReboot
	case s.ExitCode == ExitPoweroff || s.ExitCode == 0:
		return Shutdown, ReasonPoweroff
	default:
		return Crashed, ReasonCrashed
	}
}
