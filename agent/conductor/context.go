package conductor

import (
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// NewRequestID returns a fresh oslo request id, "req-<uuid4>".
func NewRequestID() string { return "req-" + uuid.NewString() }

// AdminContext returns nova.context.get_admin_context().to_dict() as nova-compute sends
// it for service work (registration, heartbeat, resource tracker), key for key as in the
// recorded traffic: is_admin true (without it conductor-side DB calls raise Forbidden),
// no user or project (so action events fall back to the instance's newest action),
// roles empty as get_admin_context leaves them, and timestamp with microseconds
// (the conductor parses it with strptime("%Y-%m-%dT%H:%M:%S.%f")).
//
// A fresh map is returned each time; the transport prefixes every key with "_context_".
func AdminContext(now time.Time, requestID string) map[string]any {
	return map[string]any{
		"user":              nil,
		"project_id":        nil,
		"system_scope":      nil,
		"project":           nil,
		"domain":            nil,
		"user_domain":       nil,
		"project_domain":    nil,
		"is_admin":          true,
		"read_only":         false,
		"show_deleted":      false,
		"auth_token":        nil,
		"request_id":        requestID,
		"global_request_id": nil,
		"resource_uuid":     nil,
		"roles":             []string{},
		"user_identity":     "- - - - -",
		"is_admin_project":  true,
		"user_id":           nil,
		"read_deleted":      "no",
		"remote_address":    nil,
		"timestamp":         objects.FormatContextTime(now),
		"quota_class":       nil,
		"user_name":         nil,
		"service_catalog":   []any{},
		"project_name":      nil,
	}
}
