package flows

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid reports a malformed configuration or state; nothing is planned or applied.
var ErrInvalid = errors.New("invalid flow input")

// Table numbers from neutron_lib/plugins/ml2/ovs_constants.py.
const (
	TableLocalSwitching  = 0
	TableCanary          = 23
	TableARPSpoof        = 24
	TableLocalEgress     = 30
	TableLocalIP         = 31
	TablePacketRateLimit = 59
	TableTransient       = 60
	TableTransientEgress = 62
	DeadVLAN             = 4095
	ofpVIDPresent        = 0x1000
	defaultPriority      = 32768
	maxLocalVLAN         = 4094
)

// Flow is one OpenFlow entry without its cookie.
type Flow struct {
	Table    int
	Priority int
	// Match is the comma-separated match in OVS's printed form, e.g. "in_port=3,dl_vlan=101";
	// empty matches everything.
	Match string
	// Actions in OVS's OpenFlow 1.3 printed form, e.g. "set_field:4097->vlan_vid,goto_table:59".
	Actions string
}

// String renders f as an ovs-ofctl flow with the given cookie.
func (f Flow) String(cookie uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cookie=%#x,table=%d,priority=%d", cookie, f.Table, f.Priority)
	if f.Match != "" {
		b.WriteString("," + f.Match)
	}
	b.WriteString(",actions=" + f.Actions)
	return b.String()
}

// Key identifies a flow the way OpenFlow's strict matching does: table, priority and match
// (fields in any order).
func (f Flow) Key() string {
	fields := splitMatch(f.Match)
	slices.Sort(fields)
	return strconv.Itoa(f.Table) + "/" + strconv.Itoa(f.Priority) + "/" + strings.Join(fields, ",")
}

func splitMatch(m string) []string {
	var out []string
	for _, f := range strings.Split(m, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// PhysBridge is one bridge_mappings entry with the OpenFlow port numbers of its patch pair.
type PhysBridge struct {
	PhysicalNetwork string
	Bridge          string
	// IntOFPort is the ofport of int-<bridge> on the integration bridge.
	IntOFPort int
	// PhysOFPort is the ofport of phy-<bridge> on the physical bridge.
	PhysOFPort int
}

// Config describes the bridges to program.
type Config struct {
	IntegrationBridge string
	Physical          []PhysBridge
}

// Network is one local VLAN mapping: a Neutron provider network present on this host.
type Network struct {
	// NetworkID is informational (logs, errors).
	NetworkID       string
	LocalVLAN       int
	NetworkType     string // "vlan" or "flat"
	PhysicalNetwork string
	// SegmentationID is the provider VLAN (vlan only).
	SegmentationID int
}

// State is the set of local VLAN mappings and dead ports to realise.
type State struct {
	Networks []Network
	// DeadPorts are ofports on the integration bridge of unbound ports (tag 4095): all their
	// ingress is dropped (neutron's port_dead).
	DeadPorts []int
}

func vid(v int) int { return ofpVIDPresent | v }

// Plan returns the desired flows per bridge name, each list sorted by table, priority and match.
func Plan(cfg Config, st State) (map[string][]Flow, error) {
	if cfg.IntegrationBridge == "" {
		return nil, fmt.Errorf("plan flows: empty integration bridge: %w", ErrInvalid)
	}
	phys := map[string]PhysBridge{}
	bridges := map[string]bool{cfg.IntegrationBridge: true}
	for _, pb := range cfg.Physical {
		if pb.PhysicalNetwork == "" || pb.Bridge == "" {
			return nil, fmt.Errorf("plan flows: physical bridge %+v: empty name: %w", pb, ErrInvalid)
		}
		if pb.IntOFPort <= 0 || pb.PhysOFPort <= 0 {
			return nil, fmt.Errorf("plan flows: bridge %s: patch ofports %d/%d not assigned: %w", pb.Bridge, pb.IntOFPort, pb.PhysOFPort, ErrInvalid)
		}
		if _, dup := phys[pb.PhysicalNetwork]; dup || bridges[pb.Bridge] {
			return nil, fmt.Errorf("plan flows: physical network %s / bridge %s mapped twice: %w", pb.PhysicalNetwork, pb.Bridge, ErrInvalid)
		}
		phys[pb.PhysicalNetwork] = pb
		bridges[pb.Bridge] = true
	}

	intBr := []Flow{
		// setup_default_table of br_int.py
		{TableLocalSwitching, 0, "", "goto_table:59"},
		{TableLocalSwitching, 65535, "dl_vlan=4095", "drop"},
		{TableCanary, 0, "", "drop"},
		{TableARPSpoof, 0, "", "drop"},
		{TableLocalEgress, 0, "", "goto_table:59"},
		{TableLocalIP, 0, "", "goto_table:59"},
		{TablePacketRateLimit, 0, "", "goto_table:60"},
		{TableTransient, 3, "", "NORMAL"},
		{TableTransientEgress, 3, "", "NORMAL"},
	}
	out := map[string][]Flow{}
	for _, pb := range cfg.Physical {
		// Until a network is provisioned nothing crosses the patch pair (drop_port).
		intBr = append(intBr, Flow{TableLocalSwitching, 2, fmt.Sprintf("in_port=%d", pb.IntOFPort), "drop"})
		out[pb.Bridge] = []Flow{
			{TableLocalSwitching, 0, "", "NORMAL"},
			{TableLocalSwitching, 2, fmt.Sprintf("in_port=%d", pb.PhysOFPort), "drop"},
		}
	}

	seenVLAN := map[int]string{}
	seenSeg := map[string]int{}
	for _, n := range st.Networks {
		if n.LocalVLAN < 1 || n.LocalVLAN > maxLocalVLAN {
			return nil, fmt.Errorf("plan flows: network %s: local vlan %d outside 1..%d: %w", n.NetworkID, n.LocalVLAN, maxLocalVLAN, ErrInvalid)
		}
		if other, dup := seenVLAN[n.LocalVLAN]; dup {
			return nil, fmt.Errorf("plan flows: local vlan %d used by %s and %s: %w", n.LocalVLAN, other, n.NetworkID, ErrInvalid)
		}
		seenVLAN[n.LocalVLAN] = n.NetworkID
		pb, ok := phys[n.PhysicalNetwork]
		if !ok {
			return nil, fmt.Errorf("plan flows: network %s: physical network %q has no bridge mapping: %w", n.NetworkID, n.PhysicalNetwork, ErrInvalid)
		}
		segKey := n.PhysicalNetwork + "/" + strconv.Itoa(n.SegmentationID)
		if lv, dup := seenSeg[segKey]; dup {
			return nil, fmt.Errorf("plan flows: segment %s mapped to local vlans %d and %d: %w", segKey, lv, n.LocalVLAN, ErrInvalid)
		}
		seenSeg[segKey] = n.LocalVLAN
		switch n.NetworkType {
		case "vlan":
			if n.SegmentationID < 1 || n.SegmentationID > maxLocalVLAN {
				return nil, fmt.Errorf("plan flows: network %s: segmentation id %d outside 1..4094: %w", n.NetworkID, n.SegmentationID, ErrInvalid)
			}
			// br_phys.provision_local_vlan: local -> provider on egress.
			out[pb.Bridge] = append(out[pb.Bridge], Flow{TableLocalSwitching, 4,
				fmt.Sprintf("in_port=%d,dl_vlan=%d", pb.PhysOFPort, n.LocalVLAN),
				fmt.Sprintf("set_field:%d->vlan_vid,NORMAL", vid(n.SegmentationID))})
			// br_int.provision_local_vlan: provider -> local on ingress.
			intBr = append(intBr, Flow{TableLocalSwitching, 3,
				fmt.Sprintf("in_port=%d,dl_vlan=%d", pb.IntOFPort, n.SegmentationID),
				fmt.Sprintf("set_field:%d->vlan_vid,goto_table:59", vid(n.LocalVLAN))})
		case "flat":
			if n.SegmentationID != 0 {
				return nil, fmt.Errorf("plan flows: flat network %s with segmentation id %d: %w", n.NetworkID, n.SegmentationID, ErrInvalid)
			}
			out[pb.Bridge] = append(out[pb.Bridge], Flow{TableLocalSwitching, 4,
				fmt.Sprintf("in_port=%d,dl_vlan=%d", pb.PhysOFPort, n.LocalVLAN), "pop_vlan,NORMAL"})
			intBr = append(intBr, Flow{TableLocalSwitching, 3,
				fmt.Sprintf("in_port=%d,vlan_tci=0x0000/0x1fff", pb.IntOFPort),
				fmt.Sprintf("push_vlan:0x8100,set_field:%d->vlan_vid,goto_table:59", vid(n.LocalVLAN))})
		default:
			return nil, fmt.Errorf("plan flows: network %s: type %q not supported (vlan, flat): %w", n.NetworkID, n.NetworkType, ErrInvalid)
		}
	}
	seenDead := map[int]bool{}
	for _, p := range st.DeadPorts {
		if p <= 0 {
			return nil, fmt.Errorf("plan flows: dead port ofport %d: %w", p, ErrInvalid)
		}
		if seenDead[p] {
			continue
		}
		seenDead[p] = true
		intBr = append(intBr, Flow{TableLocalSwitching, 2, fmt.Sprintf("in_port=%d", p), "drop"})
	}
	out[cfg.IntegrationBridge] = intBr
	for br := range out {
		sortFlows(out[br])
	}
	return out, nil
}

func sortFlows(fs []Flow) {
	slices.SortFunc(fs, func(a, b Flow) int {
		if a.Table != b.Table {
			return a.Table - b.Table
		}
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return strings.Compare(a.Match, b.Match)
	})
}
