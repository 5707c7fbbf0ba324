package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// Endpoints returns the RPC endpoints nova-compute serves: the compute API 6.1 in the null
// namespace and nova's baseapi (ping). Every method without an implementation answers as nova
// does for an operation its driver lacks.
func (m *Manager) Endpoints() []rpc.Endpoint {
	ops := m.instanceOps()
	builtin := map[string]OpHandler{
		"set_host_enabled":              m.opSetHostEnabled,
		"cache_images":                  opCacheImages,
		"check_instance_shared_storage": func(context.Context, *rpc.Request, *objects.Instance) (any, error) { return false, nil },
		"get_host_uptime":               m.opHostUptime,
		"external_instance_event":       m.opExternalInstanceEvent,
		"check_can_live_migrate_destination": func(context.Context, *rpc.Request, *objects.Instance) (any, error) {
			return nil, novaFailure("MigrationPreCheckError", "Migration pre-check error: live migration is not supported by nova-container-agent", 400,
				map[string]any{"reason": "live migration is not supported by nova-container-agent"})
		},
		"check_can_live_migrate_source": func(context.Context, *rpc.Request, *objects.Instance) (any, error) {
			return nil, novaFailure("MigrationPreCheckError", "Migration pre-check error: live migration is not supported by nova-container-agent", 400,
				map[string]any{"reason": "live migration is not supported by nova-container-agent"})
		},
	}
	for _, c := range []string{"get_vnc_console", "get_spice_console", "get_rdp_console", "get_mks_console"} {
		builtin[c] = opConsoleUnavailable
	}
	methods := map[string]rpc.HandlerFunc{}
	for name, spec := range computeMethods {
		h := ops[name]
		if h == nil {
			h = builtin[name]
		}
		if h == nil {
			h = m.opNotSupported(name)
		}
		methods[name] = m.wrap(name, spec, h)
	}
	return []rpc.Endpoint{
		{Namespace: "", Version: ComputeAPIVersion, Methods: methods},
		{Namespace: "baseapi", Version: "1.1", Methods: map[string]rpc.HandlerFunc{
			// nova/baserpc.py:BaseRPCAPI.ping answers with the service name and the argument.
			"ping": func(_ context.Context, req *rpc.Request) (any, error) {
				var arg any
				if raw, ok := req.Args["arg"]; ok {
					_ = json.Unmarshal(raw, &arg)
				} else {
					return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "TypeError", Message: "BaseRPCAPI.ping() missing 1 required positional argument: 'arg'"}
				}
				return map[string]any{"service": "compute", "arg": arg}, nil
			},
			"get_backdoor_port": func(context.Context, *rpc.Request) (any, error) { return nil, nil },
		}},
	}
}

// wrap applies nova's decorator stack (wrap_instance_fault innermost, then wrap_instance_event,
// then reverts_task_state, errors_out_migration around the body) to an operation.
func (m *Manager) wrap(method string, spec computeMethod, h OpHandler) rpc.HandlerFunc {
	return func(ctx context.Context, req *rpc.Request) (any, error) {
		// oslo deserialises every argument before calling the method, so a bad object primitive
		// fails before a missing argument does.
		if err := deserializeCheck(req.Args); err != nil {
			return nil, err
		}
		if err := checkArgs(method, spec, req.Args); err != nil {
			return nil, err
		}
		var inst *objects.Instance
		if raw, ok := req.Args["instance"]; ok && !isJSONNull(raw) {
			o, err := objects.ObjectFrom(raw)
			if err == nil {
				inst, err = objects.AsInstance(o)
			}
			if err != nil {
				return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: fmt.Sprintf("%s: malformed instance argument: %v", method, err)}
			}
		}
		if inst != nil && method != "build_and_run_instance" {
			// Lifecycle operations on one instance run one at a time (utils.synchronized(uuid));
			// the build takes the lock in its own goroutine.
			defer m.locks.Lock(inst.UUID())()
		}
		return m.runLocked(method, spec, h)(ctx, req, inst)
	}
}

// runLocked applies the decorators to h for a caller that already holds the instance's lock.
func (m *Manager) runLocked(method string, spec computeMethod, h OpHandler) OpHandler {
	return func(ctx context.Context, req *rpc.Request, inst *objects.Instance) (any, error) {
		log := m.log.With("method", method, "request_id", req.Context.RequestID())
		if inst != nil {
			log = log.With("instance", inst.UUID())
		}
		rctx := map[string]any(req.Context)
		if inst != nil && spec.dec.event {
			if err := m.eventStart(ctx, rctx, inst.UUID(), "compute_"+method); err != nil {
				log.Error("record action event start", "err", err)
				return nil, err
			}
		}
		res, err := h(ctx, req, inst)
		if err != nil {
			log.Warn("compute operation failed", "err", err)
		}
		if err != nil && inst != nil {
			if spec.dec.fault && remoteClass(err) != "InstanceNotFound" {
				m.addFault(ctx, rctx, inst.UUID(), err)
			}
			if spec.dec.migration {
				m.errorOutMigration(ctx, rctx, req, log)
			}
		}
		if inst != nil && spec.dec.event {
			if ferr := m.eventFinish(ctx, rctx, inst.UUID(), "compute_"+method, err); ferr != nil {
				log.Error("record action event finish", "err", ferr)
			}
		}
		if err != nil && inst != nil && spec.dec.revertsTaskState && !isUnexpectedTaskState(err) {
			inst.SetTaskState(objects.TaskNone)
			if serr := m.cond.InstanceSave(ctx, rctx, inst, conductor.SaveOptions{}); serr != nil {
				log.Error("revert task state", "err", serr)
			}
		}
		return res, err
	}
}

// pep440 is the version shape packaging.version.Version accepts for the versions objects carry.
var pep440 = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*$`)

// deserializeCheck fails like nova's serializer for an object argument whose version Python
// cannot parse: obj_from_primitive raises packaging's InvalidVersion.
func deserializeCheck(args map[string]json.RawMessage) error {
	for _, raw := range args {
		if !objects.IsObject(raw) {
			continue
		}
		var head struct {
			Version any `json:"nova_object.version"`
		}
		if json.Unmarshal(raw, &head) != nil {
			continue
		}
		v, _ := head.Version.(string)
		if !pep440.MatchString(v) {
			return &rpc.Failure{Module: "packaging.version", Class: "InvalidVersion", Message: fmt.Sprintf("Invalid version: '%v'", head.Version)}
		}
	}
	return nil
}

func isUnexpectedTaskState(err error) bool {
	switch remoteClass(err) {
	case "UnexpectedTaskStateError", "UnexpectedDeletingTaskStateError":
		return true
	}
	return false
}

func (m *Manager) eventStart(ctx context.Context, rctx map[string]any, uuid, name string) error {
	if err := m.cond.EventStart(ctx, rctx, objects.ActionEvent{InstanceUUID: uuid, Name: name}, m.opts.Host); err != nil {
		return fmt.Errorf("start action event %s of %s: %w", name, uuid, err)
	}
	return nil
}

func (m *Manager) eventFinish(ctx context.Context, rctx map[string]any, uuid, name string, opErr error) error {
	var excVal, excTB *string
	if opErr != nil {
		v, tb := faultText(opErr)
		excVal, excTB = &v, &tb
	}
	if err := m.cond.EventFinishWithFailure(ctx, rctx, objects.ActionEvent{InstanceUUID: uuid, Name: name}, excVal, excTB); err != nil {
		return fmt.Errorf("finish action event %s of %s: %w", name, uuid, err)
	}
	return nil
}

// faultText renders an error as nova's exception_to_dict would: the message, and a
// Python-shaped traceback naming the exception class for the event and fault details.
func faultText(err error) (msg, tb string) {
	var f *rpc.Failure
	if errors.As(err, &f) {
		cls := f.Class
		if f.Module != "" && f.Module != rpc.ModuleBuiltins {
			cls = f.Module + "." + f.Class
		}
		return f.Message, "Traceback (most recent call last):\n  (raised by nova-container-agent)\n" + cls + ": " + f.Message + "\n"
	}
	return err.Error(), "Traceback (most recent call last):\n  (raised by nova-container-agent)\nnova.exception.NovaException: " + err.Error() + "\n"
}

// faultCode is the exception's kwargs code, 500 when it has none (exception_to_dict).
func faultCode(err error) int {
	var f *rpc.Failure
	if errors.As(err, &f) {
		switch c := f.Kwargs["code"].(type) {
		case int:
			return c
		case float64:
			return int(c)
		}
	}
	return 500
}

func (m *Manager) addFault(ctx context.Context, rctx map[string]any, uuid string, opErr error) {
	msg, tb := faultText(opErr)
	fault := objects.NewInstanceFault(m.opts.Host, uuid, faultCode(opErr), msg, tb)
	if err := m.cond.InstanceFaultCreate(ctx, rctx, fault); err != nil {
		m.log.Error("record instance fault", "instance", uuid, "err", err)
	}
}

// errorOutMigration is errors_out_migration: a failed move operation leaves its migration in
// status "error" so that nova-api and the operator can see and clean it up.
func (m *Manager) errorOutMigration(ctx context.Context, rctx map[string]any, req *rpc.Request, log interface {
	Error(string, ...any)
}) {
	raw, ok := req.Args["migration"]
	if !ok || isJSONNull(raw) {
		return
	}
	o, err := objects.ObjectFrom(raw)
	if err != nil {
		return
	}
	mig, err := objects.AsMigration(o)
	if err != nil {
		return
	}
	mig.SetStatus("error")
	if err := m.cond.MigrationSave(ctx, rctx, mig); err != nil {
		log.Error("set migration status to error", "err", err)
	}
}

func (m *Manager) opNotSupported(method string) OpHandler {
	return func(context.Context, *rpc.Request, *objects.Instance) (any, error) {
		return nil, notSupported(method)
	}
}

func (m *Manager) opSetHostEnabled(ctx context.Context, req *rpc.Request, _ *objects.Instance) (any, error) {
	var enabled bool
	if err := json.Unmarshal(req.Args["enabled"], &enabled); err != nil {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "set_host_enabled: enabled must be a boolean"}
	}
	return m.SetHostEnabled(ctx, enabled)
}

func opCacheImages(_ context.Context, req *rpc.Request, _ *objects.Instance) (any, error) {
	var ids []string
	if err := json.Unmarshal(req.Args["image_ids"], &ids); err != nil {
		return nil, &rpc.Failure{Module: rpc.ModuleBuiltins, Class: "ValueError", Message: "cache_images: image_ids must be a list of strings"}
	}
	out := map[string]string{}
	for _, id := range ids {
		// The image cache fills on first boot; pre-caching is not offered yet, and nova's
		// contract for that is the "unsupported" status rather than an error.
		out[id] = "unsupported"
	}
	return out, nil
}

func opConsoleUnavailable(_ context.Context, req *rpc.Request, _ *objects.Instance) (any, error) {
	var ct string
	_ = json.Unmarshal(req.Args["console_type"], &ct)
	return nil, novaFailure("ConsoleTypeUnavailable", fmt.Sprintf("Unavailable console type %s.", ct), 400, map[string]any{"console_type": ct})
}

// opHostUptime answers like nova's libvirt driver, which returns the output of uptime(1).
func (m *Manager) opHostUptime(context.Context, *rpc.Request, *objects.Instance) (any, error) {
	b, err := os.ReadFile(m.opts.ProcRoot + "/uptime")
	if err != nil {
		return nil, fmt.Errorf("read host uptime: %w", err)
	}
	load, _ := os.ReadFile(m.opts.ProcRoot + "/loadavg")
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	d := time.Duration(up) * time.Second
	l := strings.Fields(string(load))
	for len(l) < 3 {
		l = append(l, "0.00")
	}
	return fmt.Sprintf(" %s up %d days, %d:%02d,  load average: %s, %s, %s",
		m.now().Format("15:04:05"), int(d.Hours())/24, int(d.Hours())%24, int(d.Minutes())%60, l[0], l[1], l[2]), nil
}
