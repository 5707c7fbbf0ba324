package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// ExternalEvent is what nova-api delivered for one (instance, event key).
type ExternalEvent struct {
	Name, Tag, Status string
}

// instanceEvents is nova's InstanceEvents: waiters for external events (network-vif-plugged...)
// registered before the action that triggers them, so an event that arrives early is not lost.
type instanceEvents struct {
	mu      sync.Mutex
	waiters map[string]map[string]chan ExternalEvent // instance uuid -> event key -> waiter
}

// Prepare registers a waiter for key ("name-tag") on instance and returns its channel, which
// receives exactly one event. Cancel with Forget.
func (e *instanceEvents) Prepare(instance, key string) <-chan ExternalEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters == nil {
		e.waiters = map[string]map[string]chan ExternalEvent{}
	}
	if e.waiters[instance] == nil {
		e.waiters[instance] = map[string]chan ExternalEvent{}
	}
	ch := make(chan ExternalEvent, 1)
	e.waiters[instance][key] = ch
	return ch
}

// Forget drops every waiter of instance (build finished, failed or instance deleted).
func (e *instanceEvents) Forget(instance string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.waiters, instance)
}

// pop delivers ev to its waiter and reports whether anyone was waiting.
func (e *instanceEvents) pop(instance, key string, ev ExternalEvent) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.waiters[instance][key]
	if !ok {
		return false
	}
	delete(e.waiters[instance], key)
	if len(e.waiters[instance]) == 0 {
		delete(e.waiters, instance)
	}
	ch <- ev
	return true
}

// opExternalInstanceEvent is external_instance_event: wake the waiters registered for it, like
// nova's ComputeManager.external_instance_event. Events that would refresh state here
// (network-changed, network-vif-deleted, power-update, volume-extended) are logged: the info
// cache is rebuilt from neutron by the operations that need it.
func (m *Manager) opExternalInstanceEvent(ctx context.Context, req *rpc.Request, _ *objects.Instance) (any, error) {
	var rawInsts, rawEvents []json.RawMessage
	if err := json.Unmarshal(req.Args["instances"], &rawInsts); err != nil {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "external_instance_event: instances must be a list"}
	}
	if err := json.Unmarshal(req.Args["events"], &rawEvents); err != nil {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "external_instance_event: events must be a list"}
	}
	// The instances are validated like nova's deserialiser would; the events name their own.
	for _, r := range rawInsts {
		o, err := objects.ObjectFrom(r)
		if err != nil {
			return nil, fmt.Errorf("external_instance_event: %w", err)
		}
		if _, err := objects.AsInstance(o); err != nil {
			return nil, fmt.Errorf("external_instance_event: %w", err)
		}
	}
	for _, r := range rawEvents {
		o, err := objects.ObjectFrom(r)
		if err != nil {
			return nil, fmt.Errorf("external_instance_event: %w", err)
		}
		ev, err := objects.AsInstanceExternalEvent(o)
		if err != nil {
			return nil, fmt.Errorf("external_instance_event: %w", err)
		}
		e := ExternalEvent{Name: ev.EventName(), Tag: ev.Tag(), Status: ev.Status()}
		log := m.log.With("instance", ev.InstanceUUID(), "event", ev.Key(), "status", e.Status, "request_id", req.Context.RequestID())
		switch e.Name {
		case "network-changed", "network-vif-deleted", "power-update", "volume-extended":
			log.Debug("external event needs no action on this host")
		default:
			if !m.events.pop(ev.InstanceUUID(), ev.Key(), e) {
				// Nova logs the same: an event nobody waits for is normal after a restart or
				// when the port became active before the wait was registered by another path.
				log.Info("received unexpected external event")
			}
		}
	}
	return nil, nil
}
