package rpc

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// TimestampLayout is oslo/nova's strtime format for _context_timestamp. The microseconds are
// mandatory: nova-conductor parses it with strptime("%Y-%m-%dT%H:%M:%S.%f").
const TimestampLayout = "2006-01-02T15:04:05.000000"

// Context is a flattened oslo RequestContext: the _context_* keys of a message without the prefix
// (request_id, user_id, project_id, is_admin, roles, auth_token, timestamp, ...). Values are what
// JSON decoding gives (string, float64, bool, nil, []any, map[string]any); unknown keys round-trip
// untouched.
type Context map[string]any

// contextOrder is the key order of nova's RequestContext.to_dict (oslo.context keys first, then
// nova's); encoding in this order reproduces Python's bytes for nova contexts.
var contextOrder = []string{
	"user", "project_id", "system_scope", "project", "domain", "user_domain", "project_domain",
	"is_admin", "read_only", "show_deleted", "auth_token", "request_id", "global_request_id",
	"resource_uuid", "roles", "user_identity", "is_admin_project", "user_id", "read_deleted",
	"remote_address", "timestamp", "quota_class", "user_name", "service_catalog", "project_name",
}

var contextRank = func() map[string]int {
	m := make(map[string]int, len(contextOrder))
	for i, k := range contextOrder {
		m[k] = i
	}
	return m
}()

func (c Context) str(key string) string {
	s, _ := c[key].(string)
	return s
}

// RequestID returns request_id ("req-<uuid>"), or "" if absent.
func (c Context) RequestID() string { return c.str("request_id") }

// GlobalRequestID returns global_request_id, or "" if absent.
func (c Context) GlobalRequestID() string { return c.str("global_request_id") }

// UserID returns user_id, or "" if absent.
func (c Context) UserID() string { return c.str("user_id") }

// ProjectID returns project_id, or "" if absent.
func (c Context) ProjectID() string { return c.str("project_id") }

// AuthToken returns the user's keystone token carried in auth_token, or "".
func (c Context) AuthToken() string { return c.str("auth_token") }

// IsAdmin reports is_admin (absent means false, as oslo.context's from_dict).
func (c Context) IsAdmin() bool {
	b, _ := c["is_admin"].(bool)
	return b
}

// Clone returns a shallow copy, safe to modify at the top level.
func (c Context) Clone() Context {
	out := make(Context, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// orderedKeys lists the keys in nova's to_dict order, unknown keys sorted after them.
func (c Context) orderedKeys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, iok := contextRank[keys[i]]
		rj, jok := contextRank[keys[j]]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return keys[i] < keys[j]
	})
	return keys
}

// FormatTimestamp renders t (in UTC) as _context_timestamp wants it.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(TimestampLayout) }

// NeutronTimestampLayout is the _context_timestamp neutron sends (str(datetime): a space, not "T";
// seen in the recorded neutron-openvswitch-agent traffic).
const NeutronTimestampLayout = "2006-01-02 15:04:05.000000"

// ParseTimestamp parses a _context_timestamp in nova's or neutron's form (microseconds required,
// as Python's strptime with %f).
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(TimestampLayout, s)
	if err == nil {
		return t, nil
	}
	if t, err2 := time.Parse(NeutronTimestampLayout, s); err2 == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("parse context timestamp %q: %w", s, err)
}

// NewRequestID returns an oslo request id, "req-<uuid4>".
func NewRequestID() string { return "req-" + uuid.NewString() }
