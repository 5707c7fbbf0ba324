package ovstest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
)

// Call is one command a FakeOFCtl received.
type Call struct {
	Argv  []string
	Stdin string
}

// FakeOFCtl is a stateful stand-in for ovs-ofctl implementing flows.Runner: it keeps flows per
// bridge with their cookies, answers `dump-flows BR cookie=C/-1` in OVS's --no-stats format and
// applies `--bundle add-flows BR -` files of add / delete_strict lines atomically (all lines are
// parsed before any takes effect). It records every call for argv/stdin assertions.
type FakeOFCtl struct {
	mu    sync.Mutex
	flows map[string]map[string]fakeFlow // bridge -> key -> flow
	calls []Call
}

type fakeFlow struct {
	cookie uint64
	flow   flows.Flow
}

var _ flows.Runner = (*FakeOFCtl)(nil)

// NewFakeOFCtl returns a fake with the given bridges, all empty.
func NewFakeOFCtl(bridges ...string) *FakeOFCtl {
	f := &FakeOFCtl{flows: map[string]map[string]fakeFlow{}}
	for _, b := range bridges {
		f.flows[b] = map[string]fakeFlow{}
	}
	return f
}

// Calls returns the calls received so far.
func (f *FakeOFCtl) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Install adds a flow with an arbitrary cookie, as another owner (neutron) would.
func (f *FakeOFCtl) Install(bridge string, cookie uint64, fl flows.Flow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows[bridge][fl.Key()] = fakeFlow{cookie, fl}
}

// Flows returns all flows on bridge whatever their cookie, keyed by cookie.
func (f *FakeOFCtl) Flows(bridge string) map[uint64][]flows.Flow {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64][]flows.Flow{}
	for _, ff := range f.flows[bridge] {
		out[ff.cookie] = append(out[ff.cookie], ff.flow)
	}
	return out
}

// Run implements flows.Runner.
func (f *FakeOFCtl) Run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Argv: append([]string{name}, args...), Stdin: string(stdin)})
	if name != "ovs-ofctl" || len(args) < 4 || args[0] != "-O" || args[1] != "OpenFlow13" {
		return nil, fmt.Errorf("fake ovs-ofctl: unsupported argv %q", args)
	}
	switch {
	case len(args) == 6 && args[2] == "--no-stats" && args[3] == "dump-flows":
		return f.dump(args[4], args[5])
	case len(args) == 6 && args[2] == "--bundle" && args[3] == "add-flows" && args[5] == "-":
		return nil, f.bundle(args[4], string(stdin))
	}
	return nil, fmt.Errorf("fake ovs-ofctl: unsupported argv %q", args)
}

func parseCookieMask(s string) (uint64, error) {
	v, ok := strings.CutPrefix(s, "cookie=")
	if !ok {
		return 0, fmt.Errorf("want cookie=C/-1, got %q", s)
	}
	c, ok := strings.CutSuffix(v, "/-1")
	if !ok {
		return 0, fmt.Errorf("fake ovs-ofctl supports only the exact mask /-1, got %q", s)
	}
	return strconv.ParseUint(c, 0, 64)
}

func (f *FakeOFCtl) dump(bridge, cookieArg string) ([]byte, error) {
	tbl, ok := f.flows[bridge]
	if !ok {
		return nil, fmt.Errorf("ovs-ofctl: %s is not a bridge or a socket", bridge)
	}
	cookie, err := parseCookieMask(cookieArg)
	if err != nil {
		return nil, err
	}
	var fs []flows.Flow
	for _, ff := range tbl {
		if ff.cookie == cookie {
			fs = append(fs, ff.flow)
		}
	}
	var b strings.Builder
	for _, fl := range fs {
		// OVS omits table=0 with --no-stats.
		fmt.Fprintf(&b, " cookie=%#x, ", cookie)
		if fl.Table != 0 {
			fmt.Fprintf(&b, "table=%d, ", fl.Table)
		}
		fmt.Fprintf(&b, "priority=%d", fl.Priority)
		if fl.Match != "" {
			b.WriteString("," + fl.Match)
		}
		b.WriteString(" actions=" + fl.Actions + "\n")
	}
	return []byte(b.String()), nil
}

type bundleOp struct {
	del    bool
	cookie uint64
	flow   flows.Flow
}

func (f *FakeOFCtl) bundle(bridge, file string) error {
	tbl, ok := f.flows[bridge]
	if !ok {
		return fmt.Errorf("ovs-ofctl: %s is not a bridge or a socket", bridge)
	}
	var ops []bundleOp
	for _, line := range strings.Split(file, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		switch cmd {
		case "add":
			parsed, err := flows.ParseDump(strings.Replace(rest, ",actions=", " actions=", 1))
			if err != nil || len(parsed) != 1 {
				return fmt.Errorf("ovs-ofctl: bad flow %q: %v", rest, err)
			}
			c, err := leadingCookie(rest, false)
			if err != nil {
				return err
			}
			ops = append(ops, bundleOp{cookie: c, flow: parsed[0]})
		case "delete_strict":
			parsed, err := flows.ParseDump(rest + " actions=drop")
			if err != nil || len(parsed) != 1 {
				return fmt.Errorf("ovs-ofctl: bad match %q: %v", rest, err)
			}
			c, err := leadingCookie(rest, true)
			if err != nil {
				return err
			}
			ops = append(ops, bundleOp{del: true, cookie: c, flow: parsed[0]})
		default:
			return fmt.Errorf("ovs-ofctl: fake supports add and delete_strict lines, got %q", line)
		}
	}
	for _, op := range ops {
		k := op.flow.Key()
		if op.del {
			if cur, ok := tbl[k]; ok && cur.cookie == op.cookie {
				delete(tbl, k)
			}
			continue
		}
		tbl[k] = fakeFlow{op.cookie, op.flow} // OFPFC_ADD replaces an identical match
	}
	return nil
}

func leadingCookie(s string, masked bool) (uint64, error) {
	first, _, _ := strings.Cut(s, ",")
	if masked {
		return parseCookieMask(first)
	}
	v, ok := strings.CutPrefix(first, "cookie=")
	if !ok {
		return 0, fmt.Errorf("ovs-ofctl fake: flow %q must start with cookie=", s)
	}
	return strconv.ParseUint(v, 0, 64)
}
