package flows

import (
	"bytes"
	"context"
	"fmt"
	"github.com/nova-container-agent/nova-container-agent/internal/execrun"
	"slices"
	"strconv"
	"strings"
)

// Runner runs an external command with stdin and returns its stdout. Tests inject a fake that
// records argv and stdin.
type Runner interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner = execrun.Exec

var _ Runner = ExecRunner{}

// Applier reconciles bridges' flows carrying Cookie with a plan.
type Applier struct {
	run    Runner
	cookie uint64
	ofctl  string
}

// NewApplier returns an Applier that marks and selects flows by cookie (must not be 0: a zero
// cookie would select every flow installed without one).
func NewApplier(r Runner, cookie uint64) *Applier {
	return &Applier{run: r, cookie: cookie, ofctl: "ovs-ofctl"}
}

// Cookie returns the cookie our flows carry.
func (a *Applier) Cookie() uint64 { return a.cookie }

func (a *Applier) cookieMatch() string { return fmt.Sprintf("cookie=%#x/-1", a.cookie) }

// Dump returns the flows on bridge that carry our cookie.
func (a *Applier) Dump(ctx context.Context, bridge string) ([]Flow, error) {
	if a.cookie == 0 {
		return nil, fmt.Errorf("dump flows of %s: zero cookie: %w", bridge, ErrInvalid)
	}
	out, err := a.run.Run(ctx, nil, a.ofctl, "-O", "OpenFlow13", "--no-stats", "dump-flows", bridge, a.cookieMatch())
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s: %w", bridge, err)
	}
	fs, err := ParseDump(string(out))
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s: %w", bridge, err)
	}
	return fs, nil
}

// Changes is what one Apply did to a bridge.
type Changes struct {
	Added, Deleted []Flow
}

// Diff returns the flows to add (missing, or present with other actions) and to delete
// (present, not desired). Both inputs are flows with our cookie.
func Diff(current, desired []Flow) (add, del []Flow) {
	cur := map[string]Flow{}
	for _, f := range current {
		cur[f.Key()] = f
	}
	want := map[string]bool{}
	for _, f := range desired {
		k := f.Key()
		want[k] = true
		if c, ok := cur[k]; !ok || normActions(c.Actions) != normActions(f.Actions) {
			add = append(add, f)
		}
	}
	for _, f := range current {
		if !want[f.Key()] {
			del = append(del, f)
		}
	}
	sortFlows(add)
	sortFlows(del)
	return add, del
}

// Apply makes bridge's flows with our cookie equal desired, in one atomic bundle. An "add" of an
// existing match replaces that flow's actions, so changed flows need no delete.
func (a *Applier) Apply(ctx context.Context, bridge string, desired []Flow) (Changes, error) {
	current, err := a.Dump(ctx, bridge)
	if err != nil {
		return Changes{}, err
	}
	add, del := Diff(current, desired)
	if len(add)+len(del) == 0 {
		return Changes{}, nil
	}
	var in bytes.Buffer
	for _, f := range del {
		// delete_strict with the cookie mask: matches only our flow with exactly this
		// table, priority and match.
		fmt.Fprintf(&in, "delete_strict %s,table=%d,priority=%d", a.cookieMatch(), f.Table, f.Priority)
		if f.Match != "" {
			in.WriteString("," + f.Match)
		}
		in.WriteByte('\n')
	}
	for _, f := range add {
		in.WriteString("add " + f.String(a.cookie) + "\n")
	}
	if _, err := a.run.Run(ctx, in.Bytes(), a.ofctl, "-O", "OpenFlow13", "--bundle", "add-flows", bridge, "-"); err != nil {
		return Changes{}, fmt.Errorf("apply %d added, %d deleted flows to %s: %w", len(add), len(del), bridge, err)
	}
	return Changes{Added: add, Deleted: del}, nil
}

// ApplyPlan applies every bridge of plan; bridges are independent bundles.
func (a *Applier) ApplyPlan(ctx context.Context, plan map[string][]Flow) (map[string]Changes, error) {
	out := map[string]Changes{}
	for _, br := range sortedKeys(plan) {
		ch, err := a.Apply(ctx, br, plan[br])
		if err != nil {
			return out, err
		}
		out[br] = ch
	}
	return out, nil
}

// Clear removes every flow with our cookie from bridge.
func (a *Applier) Clear(ctx context.Context, bridge string) error {
	_, err := a.Apply(ctx, bridge, nil)
	return err
}

// ParseDump parses `ovs-ofctl dump-flows` output (with or without stats, OpenFlow 1.0 or 1.3
// headers) into flows; the cookie is dropped since the dump was already filtered by it.
func ParseDump(out string) ([]Flow, error) {
	var fs []Flow
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "NXST_FLOW") || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		left, actions, ok := strings.Cut(line, " actions=")
		if !ok {
			if strings.HasPrefix(line, "actions=") { // a flow with nothing before actions
				left, actions, ok = "", strings.TrimPrefix(line, "actions="), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("flow line %q without actions: %w", line, ErrInvalid)
		}
		f := Flow{Priority: defaultPriority, Actions: strings.TrimSpace(actions)}
		var match []string
		for _, tok := range strings.Split(strings.ReplaceAll(left, ", ", ","), ",") {
			tok = strings.TrimSpace(tok)
			// "reset_counts priority=1" : flags are space-separated from the next field.
			for _, t := range strings.Fields(tok) {
				k, v, hasV := strings.Cut(t, "=")
				switch {
				case k == "table" && hasV:
					n, err := strconv.Atoi(v)
					if err != nil {
						return nil, fmt.Errorf("flow line %q: table: %w", line, ErrInvalid)
					}
					f.Table = n
				case k == "priority" && hasV:
					n, err := strconv.Atoi(v)
					if err != nil {
						return nil, fmt.Errorf("flow line %q: priority: %w", line, ErrInvalid)
					}
					f.Priority = n
				case ignoredField[k]:
				default:
					match = append(match, t)
				}
			}
		}
		f.Match = strings.Join(match, ",")
		fs = append(fs, f)
	}
	return fs, nil
}

// ignoredField lists dump-flows fields that are statistics, timeouts or flags, not match.
var ignoredField = map[string]bool{
	"cookie": true, "duration": true, "n_packets": true, "n_bytes": true, "idle_age": true,
	"hard_age": true, "idle_timeout": true, "hard_timeout": true, "importance": true,
	"reset_counts": true, "send_flow_rem": true, "check_overlap": true,
	"no_packet_counts": true, "no_byte_counts": true, "": true,
}

// normActions maps OpenFlow 1.0 spellings to the 1.3 forms OVS prints, so a plan written in
// either compares equal to a dump.
func normActions(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "mod_vlan_vid:"):
			if n, err := strconv.Atoi(strings.TrimPrefix(p, "mod_vlan_vid:")); err == nil {
				parts[i] = fmt.Sprintf("set_field:%d->vlan_vid", vid(n))
			}
		case p == "strip_vlan":
			parts[i] = "pop_vlan"
		case p == "output:NORMAL":
			parts[i] = "NORMAL"
		}
	}
	return strings.Join(parts, ",")
}

func sortedKeys(m map[string][]Flow) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
