package ovsdb

import (
	"fmt"

	"github.com/ovn-kubernetes/libovsdb/model"
)

// DatabaseName is the name of the database ovsdb-server serves for ovs-vswitchd.
const DatabaseName = "Open_vSwitch"

// Table names, as in vswitch.ovsschema.
const (
	OpenvSwitchTable = "Open_vSwitch"
	BridgeTable      = "Bridge"
	PortTable        = "Port"
	InterfaceTable   = "Interface"
)

// OpenvSwitch is the single root row of the database; bridges are only alive while it
// references them (Bridge is not a root table, so an unreferenced Bridge is garbage-collected).
type OpenvSwitch struct {
	UUID          string            `ovsdb:"_uuid"`
	Bridges       []string          `ovsdb:"bridges"`
	DatapathTypes []string          `ovsdb:"datapath_types"`
	IfaceTypes    []string          `ovsdb:"iface_types"`
	ExternalIDs   map[string]string `ovsdb:"external_ids"`
	OVSVersion    *string           `ovsdb:"ovs_version"`
	// NextCfg is bumped by a client that wants to know when ovs-vswitchd has applied its
	// change; ovs-vswitchd copies it to CurCfg once it has (ovs-vsctl's wait).
	NextCfg int `ovsdb:"next_cfg"`
	CurCfg  int `ovsdb:"cur_cfg"`
}

// Bridge is one OVS bridge (br-int, br-phys, ...).
type Bridge struct {
	UUID         string            `ovsdb:"_uuid"`
	Name         string            `ovsdb:"name"`
	Ports        []string          `ovsdb:"ports"`
	FailMode     *string           `ovsdb:"fail_mode"`
	DatapathType string            `ovsdb:"datapath_type"`
	Protocols    []string          `ovsdb:"protocols"`
	ExternalIDs  map[string]string `ovsdb:"external_ids"`
	OtherConfig  map[string]string `ovsdb:"other_config"`
}

// Port is a bridge port; neutron keeps the local VLAN in Tag and the network binding in
// OtherConfig (net_uuid, network_type, physical_network, segmentation_id, tag).
type Port struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Interfaces  []string          `ovsdb:"interfaces"`
	Tag         *int              `ovsdb:"tag"`
	Trunks      []int             `ovsdb:"trunks"`
	VLANMode    *string           `ovsdb:"vlan_mode"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
}

// Interface is the network device behind a Port; os-vif and neutron key instance ports on its
// external_ids (iface-id, iface-status, attached-mac, vm-uuid). OFPort is assigned by
// ovs-vswitchd once it has opened the device (-1 if it failed, absent until then).
type Interface struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Type        string            `ovsdb:"type"`
	Options     map[string]string `ovsdb:"options"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	OFPort      *int              `ovsdb:"ofport"`
	MTURequest  *int              `ovsdb:"mtu_request"`
	Error       *string           `ovsdb:"error"`
}

// Model returns the client database model mapping the structs above to their tables.
func Model() (model.ClientDBModel, error) {
	m, err := model.NewClientDBModel(DatabaseName, map[string]model.Model{
		OpenvSwitchTable: &OpenvSwitch{},
		BridgeTable:      &Bridge{},
		PortTable:        &Port{},
		InterfaceTable:   &Interface{},
	})
	if err != nil {
		return model.ClientDBModel{}, fmt.Errorf("build %s client model: %w", DatabaseName, err)
	}
	return m, nil
}
