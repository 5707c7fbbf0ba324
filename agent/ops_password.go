package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
)

// passwordSetter is the driver's set_admin_password; *driver.Driver has it.
type passwordSetter interface {
	SetPassword(ctx context.Context, id, user, password string) error
}

var _ passwordSetter = (*driver.Driver)(nil)

// opSetAdminPassword is set_admin_password: the guest's own chpasswd sets the password of the
// image's admin user (image property os_admin_user, root by default), as a guest agent does
// for a VM. Like nova, only a running instance can take it, and the task state is cleared
// whatever happens.
func (m *Manager) opSetAdminPassword(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
	uuid := inst.UUID()
	rctx := map[string]any(req.Context)
	ps, ok := m.lc.Driver.(passwordSetter)
	if !ok {
		return nil, notSupported("set_admin_password")
	}
	var pass string
	if err := json.Unmarshal(req.Args["new_pass"], &pass); err != nil {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "set_admin_password: new_pass must be a string"}
	}
	clear := func() error {
		inst.SetTaskState(objects.TaskNone)
		return m.cond.InstanceSave(ctx, rctx, inst, tasks(objects.TaskUpdatingPassword))
	}
	failed := func(reason string) error {
		return novaFailure("InstancePasswordSetFailed",
			fmt.Sprintf("Failed to set admin password on %s because %s", uuid, reason), 409,
			map[string]any{"instance": uuid, "reason": reason})
	}
	if p, err := m.powerState(ctx, uuid); err != nil || p != objects.PowerRunning {
		if err := clear(); err != nil {
			return nil, err
		}
		return nil, failed(fmt.Sprintf("instance %s is not running", uuid))
	}
	user := inst.SystemMetadata()["image_os_admin_user"]
	if user == "" {
		user = "root"
	}
	err := ps.SetPassword(ctx, uuid, user, pass)
	if cerr := clear(); cerr != nil {
		return nil, cerr
	}
	switch {
	case err == nil:
		m.log.Info("admin password set", "instance", uuid, "user", user, "request_id", req.Context.RequestID())
		return nil, nil
	case errors.Is(err, driver.ErrNotRunning):
		return nil, failed(fmt.Sprintf("instance %s is not running", uuid))
	default:
		// The reason reaches the user: name the cause, never the password.
		m.log.Warn("set admin password", "instance", uuid, "user", user, "err", err)
		return nil, failed("error setting admin password")
	}
}
