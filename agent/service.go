package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// ensureService is nova/service.py's Service.start registration: get the services row for this
// host and binary, create it when absent, and claim the Zed service version when it differs.
func (m *Manager) ensureService(ctx context.Context, actx map[string]any) error {
	svc, err := m.getService(ctx, actx)
	if err != nil {
		return err
	}
	if svc == nil {
		svc = objects.NewService(m.opts.Host, Binary, Topic)
		if err := m.cond.ServiceCreate(ctx, actx, svc); err != nil {
			switch {
			case errors.Is(err, conductor.ErrConflict):
				// Another process registered the same host between our get and create.
				if svc, err = m.getService(ctx, actx); err != nil {
					return err
				}
				if svc == nil {
					return fmt.Errorf("register service %s: exists but cannot be read", m.opts.Host)
				}
			default:
				return fmt.Errorf("register service %s: %w", m.opts.Host, err)
			}
		}
		m.log.Info("registered compute service", "host", m.opts.Host, "service_uuid", svc.UUID())
	}
	if svc.ServiceVersion() != objects.ServiceVersion {
		svc.SetVersion(objects.ServiceVersion)
		if err := m.cond.ServiceSave(ctx, actx, svc); err != nil {
			return fmt.Errorf("update service version of %s: %w", m.opts.Host, err)
		}
	}
	m.mu.Lock()
	m.service = svc
	m.mu.Unlock()
	return nil
}

func (m *Manager) getService(ctx context.Context, actx map[string]any) (*objects.Service, error) {
	svc, err := m.cond.ServiceGetByHostAndBinary(ctx, actx, m.opts.Host, Binary)
	if errors.Is(err, conductor.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up service %s/%s: %w", m.opts.Host, Binary, err)
	}
	return svc, nil
}

// Heartbeat is one report of nova's servicegroup db driver: report_count incremented and saved,
// which is what makes the conductor refresh last_seen_up. The conductor's updates (e.g. an
// operator's disabled flag) are applied to our copy by the conductor client.
func (m *Manager) Heartbeat(ctx context.Context) error {
	m.mu.Lock()
	svc := m.service
	m.mu.Unlock()
	if svc == nil {
		// The service was never registered (conductor unreachable at start): register now.
		return m.ensureService(ctx, m.adminContext())
	}
	// Work on a copy so a failed save does not leave a half-applied count behind for the next try.
	next := &objects.Service{Object: svc.Clone()}
	if err := m.cond.ServiceHeartbeat(ctx, m.adminContext(), next); err != nil {
		if remoteClass(err) == "ServiceNotFound" {
			// An operator deleted the service row: register again, as nova-compute does on restart.
			m.mu.Lock()
			m.service = nil
			m.mu.Unlock()
		}
		return fmt.Errorf("report state of service %s: %w", m.opts.Host, err)
	}
	m.mu.Lock()
	m.service = next
	m.mu.Unlock()
	return nil
}

func isJSONNull(raw json.RawMessage) bool {
	s := string(raw)
	return len(raw) == 0 || s == "null"
}
