package neutron

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// idOf decodes the "id" of a port or network dict argument.
func idOf(req *rpc.Request, arg string) (string, error) {
	raw, ok := req.Args[arg]
	if !ok {
		return "", fmt.Errorf("%s without %q: %w", req.Method, arg, ErrBadMessage)
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.ID == "" {
		return "", fmt.Errorf("%s: %q has no id: %w", req.Method, arg, ErrBadMessage)
	}
	return v.ID, nil
}

// handlePortUpdate is the agent's port_update(port, network_type, segmentation_id,
// physical_network): the port is reprocessed at the next pass if it is plugged here (the
// payload itself is not trusted, as neutron's agent does: notifications may be reordered).
func (a *Agent) handlePortUpdate(ctx context.Context, req *rpc.Request) (any, error) {
	id, err := idOf(req, "port")
	if err != nil {
		rpc.Logger(ctx).Warn("ignoring port_update", "error", err)
		return nil, err
	}
	a.markPort(id)
	return nil, nil
}

// handlePortDelete is port_delete(port_id): a port still plugged here goes to the dead VLAN.
func (a *Agent) handlePortDelete(ctx context.Context, req *rpc.Request) (any, error) {
	var id string
	if raw, ok := req.Args["port_id"]; ok {
		_ = json.Unmarshal(raw, &id)
	}
	if id == "" {
		err := fmt.Errorf("port_delete without port_id: %w", ErrBadMessage)
		rpc.Logger(ctx).Warn("ignoring port_delete", "error", err)
		return nil, err
	}
	a.mu.Lock()
	a.deleted[id] = true
	a.mu.Unlock()
	a.kick()
	return nil, nil
}

// handleNetworkUpdate is network_update(network): every port of the network is reprocessed
// (admin state, segment changes).
func (a *Agent) handleNetworkUpdate(ctx context.Context, req *rpc.Request) (any, error) {
	id, err := idOf(req, "network")
	if err != nil {
		rpc.Logger(ctx).Warn("ignoring network_update", "error", err)
		return nil, err
	}
	a.mu.Lock()
	a.pendingNets[id] = true
	a.mu.Unlock()
	a.kick()
	return nil, nil
}
