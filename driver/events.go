package driver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// EventKind is what happened to an instance.
type EventKind string

// Event kinds delivered to a Watch callback.
const (
	EventStarted  EventKind = "started"  // instance container started
	EventStopped  EventKind = "stopped"  // PID 1 exited: see Power and ExitCode
	EventRebooted EventKind = "rebooted" // in-guest reboot; the driver started it again
	EventPaused   EventKind = "paused"
	EventUnpaused EventKind = "unpaused"
	EventOOM      EventKind = "oom"
	// EventSandboxStopped: the namespace owner died; the instance has lost
	// (or will lose, on its next restart) its plugged ports.
	EventSandboxStopped EventKind = "sandbox-stopped"
	EventSandboxStarted EventKind = "sandbox-started"
)

// Event is one lifecycle change, for nova's power-state sync.
type Event struct {
	UUID     string
	Kind     EventKind
	ExitCode int
	// Power is the state implied by the event (for EventStopped: SHUTDOWN
	// for a guest poweroff, CRASHED otherwise; RUNNING after a reboot).
	Power spec.PowerState
	Time  time.Time
	Err   error // set on EventRebooted when the restart failed
}

// Watch follows Docker's event stream for this agent's containers until ctx
// ends, calling fn for each lifecycle change. It handles in-guest reboots
// itself: when PID 1 exits with 129 the instance is started again (same
// sandbox, so the same namespace and ports) and EventRebooted is reported.
// A broken stream is re-opened from the last seen event time, so nothing
// is lost across a dockerd restart with live-restore.
func (d *Driver) Watch(ctx context.Context, fn func(Event)) error {
	since := ""
	backoff := 100 * time.Millisecond
	for {
		res := d.api.Events(ctx, client.EventsListOptions{
			Since: since,
			Filters: make(client.Filters).
				Add("type", string(events.ContainerEventType)).
				Add("label", spec.LabelOwner+"="+d.opts.OwnerKey),
		})
		err := d.consume(ctx, res, fn, &since)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.WarnContext(ctx, "docker event stream ended; reconnecting", "error", err, "since", since)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (d *Driver) consume(ctx context.Context, res client.EventsResult, fn func(Event), since *string) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-res.Err:
			if !ok {
				return errors.New("event stream closed")
			}
			return err
		case m, ok := <-res.Messages:
			if !ok {
				return errors.New("event stream closed")
			}
			if m.TimeNano > 0 {
				// Resume strictly after this event: Since is inclusive.
				*since = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9+1)
			}
			if ev, ok := d.handle(ctx, m); ok {
				fn(ev)
			}
		}
	}
}

// handle turns a Docker event into ours; in-guest reboots are acted upon.
func (d *Driver) handle(ctx context.Context, m events.Message) (Event, bool) {
	attrs := m.Actor.Attributes
	id := attrs[spec.LabelInstance]
	if spec.ValidateUUID(id) != nil || attrs[spec.LabelOwner] != d.opts.OwnerKey {
		return Event{}, false
	}
	ev := Event{UUID: id, Time: time.Unix(0, m.TimeNano)}
	if m.TimeNano == 0 {
		ev.Time = time.Unix(m.Time, 0)
	}
	sandbox := attrs[spec.LabelRole] == spec.RoleSandbox
	switch m.Action {
	case events.ActionStart:
		ev.Kind, ev.Power = EventStarted, spec.Running
		if sandbox {
			ev.Kind = EventSandboxStarted
		}
	case events.ActionDie:
		code, _ := strconv.Atoi(attrs["exitCode"])
		ev.ExitCode = code
		if sandbox {
			ev.Kind = EventSandboxStopped
			return ev, true
		}
		if code == spec.ExitReboot {
			ev.Kind, ev.Power = EventRebooted, spec.Running
			ev.Err = d.restartAfterGuestReboot(ctx, id)
			if ev.Err != nil {
				ev.Power = spec.Shutdown
			}
			return ev, true
		}
		ev.Kind = EventStopped
		ev.Power, _ = spec.MapState(spec.ContainerState{Exists: true, Status: "exited", ExitCode: code, AgentStopped: d.hasMarker(id, markStopped)})
	case events.ActionPause:
		if sandbox {
			return ev, false
		}
		ev.Kind, ev.Power = EventPaused, spec.Paused
		if d.hasMarker(id, markSuspended) {
			ev.Power = spec.Suspended
		}
	case events.ActionUnPause:
		if sandbox {
			return ev, false
		}
		ev.Kind, ev.Power = EventUnpaused, spec.Running
	case events.ActionOOM:
		ev.Kind = EventOOM
	default:
		return ev, false
	}
	return ev, true
}

// restartAfterGuestReboot starts the instance after `reboot` inside it.
// Under the instance lock, and only if it is still exited with 129: an
// operation the agent started meanwhile (destroy, rebuild) wins.
func (d *Driver) restartAfterGuestReboot(ctx context.Context, id string) error {
	defer d.lock(id)()
	name, _ := d.names(id)
	c, err := d.inspect(ctx, name)
	if err != nil {
		return err
	}
	if running(c) || c.State == nil || c.State.ExitCode != spec.ExitReboot {
		return nil
	}
	d.log.DebugContext(ctx, "guest rebooted itself; starting it again", "instance", id)
	return d.powerOnLocked(ctx, id, nil)
}
