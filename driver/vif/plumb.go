package vif

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Outcome says what Plug had to do.
type Outcome string

// Plug outcomes.
const (
	Created   Outcome = "created"   // no pair existed
	Unchanged Outcome = "unchanged" // the pair was already exactly as planned
	Repaired  Outcome = "repaired"  // the pair existed; settings were corrected in place
	Recreated Outcome = "recreated" // a stale pair (peer lost, renamed or moved) was replaced
)

// Plumber creates and removes veth pairs. Its zero value is not usable; use NewPlumber.
type Plumber struct {
	// retries bounds re-running netlink dumps interrupted by concurrent changes.
	retries int
	// noTxOffload computes checksums in software on both veth ends (see offload.go).
	noTxOffload bool
}

// PlumberOption configures a Plumber.
type PlumberOption func(*Plumber)

// WithSoftwareChecksums makes every plugged veth compute TX checksums in software, which Open
// vSwitch's userspace (netdev) datapath requires for TCP and UDP to work.
func WithSoftwareChecksums(on bool) PlumberOption { return func(p *Plumber) { p.noTxOffload = on } }

// NewPlumber returns a Plumber.
func NewPlumber(opts ...PlumberOption) *Plumber {
	p := &Plumber{retries: 5}
	for _, o := range opts {
		o(p)
	}
	return p
}

// dump re-runs a netlink dump while the kernel reports it interrupted (the netlink message
// sequence changed under it), so callers never act on a partial list.
func dump[T any](p *Plumber, what string, f func() (T, error)) (T, error) {
	var out T
	var err error
	for i := 0; i <= p.retries; i++ {
		out, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

type handles struct {
	host, ctr *netlink.Handle
	ns        netns.NsHandle
}

func (h *handles) close() {
	if h.host != nil {
		h.host.Close()
	}
	if h.ctr != nil {
		h.ctr.Close()
	}
	if h.ns.IsOpen() {
		h.ns.Close()
	}
}

func open(netnsPath string) (*handles, error) {
	h := &handles{ns: -1}
	var err error
	if h.host, err = netlink.NewHandle(); err != nil {
		return nil, fmt.Errorf("host netlink handle: %w", err)
	}
	if h.ns, err = netns.GetFromPath(netnsPath); err != nil {
		h.close()
		return nil, fmt.Errorf("open netns %s: %w", netnsPath, err)
	}
	if h.ctr, err = netlink.NewHandleAt(h.ns); err != nil {
		h.close()
		return nil, fmt.Errorf("netlink handle in %s: %w", netnsPath, err)
	}
	return h, nil
}

// Plug makes the veth pair of plan exist between the host and the namespace at netnsPath
// (/proc/<pid>/ns/net or a bind-mounted netns file), configured as planned.
func (p *Plumber) Plug(ctx context.Context, netnsPath string, plan Plan) (Outcome, error) {
	if err := plan.Validate(); err != nil {
		return "", fmt.Errorf("plug port %s: %w", plan.PortID, err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h, err := open(netnsPath)
	if err != nil {
		return "", fmt.Errorf("plug port %s: %w", plan.PortID, err)
	}
	defer h.close()
	outcome, err := p.plug(h, plan)
	if err != nil {
		return "", fmt.Errorf("plug port %s into %s: %w", plan.PortID, netnsPath, err)
	}
	if p.noTxOffload {
		if err := p.softwareChecksums(h, plan); err != nil {
			return "", fmt.Errorf("plug port %s into %s: %w", plan.PortID, netnsPath, err)
		}
	}
	return outcome, nil
}

func (p *Plumber) plug(h *handles, plan Plan) (Outcome, error) {
	host := plan.HostName()
	outcome := Created
	if l, err := h.host.LinkByName(host); err == nil {
		peer, ok := p.peerIn(h, l, plan)
		if ok {
			changed, err := p.configure(h, peer, plan, false)
			if err != nil {
				return "", err
			}
			if err := p.hostUp(h, l, plan); err != nil {
				return "", err
			}
			if changed {
				return Repaired, nil
			}
			return Unchanged, nil
		}
		if _, isVeth := l.(*netlink.Veth); !isVeth {
			return "", fmt.Errorf("host device %s exists and is a %s, not our veth: %w", host, l.Type(), ErrConflict)
		}
		if err := h.host.LinkDel(l); err != nil {
			return "", fmt.Errorf("delete stale %s: %w", host, err)
		}
		outcome = Recreated
	} else if !isNotFound(err) {
		return "", fmt.Errorf("look up %s: %w", host, err)
	}
	// A leftover device with our container name (e.g. a veth whose host end another tool
	// removed and recreated elsewhere) would block the rename.
	if old, err := h.ctr.LinkByName(plan.IfName); err == nil {
		if _, isVeth := old.(*netlink.Veth); !isVeth {
			return "", fmt.Errorf("container already has %s of type %s: %w", plan.IfName, old.Type(), ErrConflict)
		}
		if err := h.ctr.LinkDel(old); err != nil {
			return "", fmt.Errorf("delete stale container %s: %w", plan.IfName, err)
		}
		outcome = Recreated
	}
	tmp, err := tempName()
	if err != nil {
		return "", err
	}
	mac, _ := net.ParseMAC(plan.MAC)
	// The peer is created directly in the target namespace under a temporary name and renamed
	// there: creating it as "eth0" in the host namespace could collide with a host device.
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: host, MTU: plan.MTU},
		PeerName:         tmp,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(h.ns)),
	}
	if err := h.host.LinkAdd(veth); err != nil {
		return "", fmt.Errorf("create veth %s/%s: %w", host, tmp, err)
	}
	cleanup := func() { _ = h.host.LinkDel(veth) }
	peer, err := h.ctr.LinkByName(tmp)
	if err != nil {
		cleanup()
		return "", fmt.Errorf("find peer %s in namespace: %w", tmp, err)
	}
	if _, err := p.configure(h, peer, plan, true); err != nil {
		cleanup()
		return "", err
	}
	l, err := h.host.LinkByName(host)
	if err != nil {
		cleanup()
		return "", fmt.Errorf("find %s: %w", host, err)
	}
	if err := p.hostUp(h, l, plan); err != nil {
		cleanup()
		return "", err
	}
	return outcome, nil
}

// peerIn returns the container end of host veth l if it lives in the target namespace.
func (p *Plumber) peerIn(h *handles, l netlink.Link, plan Plan) (netlink.Link, bool) {
	if _, ok := l.(*netlink.Veth); !ok || l.Attrs().ParentIndex == 0 {
		return nil, false
	}
	peer, err := h.ctr.LinkByIndex(l.Attrs().ParentIndex)
	if err != nil {
		return nil, false
	}
	if _, ok := peer.(*netlink.Veth); !ok || peer.Attrs().ParentIndex != l.Attrs().Index {
		return nil, false // an unrelated device that happens to share the index
	}
	if peer.Attrs().Name != plan.IfName {
		return nil, false
	}
	return peer, true
}

func (p *Plumber) hostUp(h *handles, l netlink.Link, plan Plan) error {
	if l.Attrs().MTU != plan.MTU {
		if err := h.host.LinkSetMTU(l, plan.MTU); err != nil {
			return fmt.Errorf("set mtu of %s: %w", l.Attrs().Name, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.host.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// configure brings the container end to the plan and reports whether anything changed.
func (p *Plumber) configure(h *handles, l netlink.Link, plan Plan, fresh bool) (bool, error) {
	changed := fresh
	a := l.Attrs()
	if a.Name != plan.IfName {
		if a.Flags&net.FlagUp != 0 {
			if err := h.ctr.LinkSetDown(l); err != nil {
				return false, fmt.Errorf("set %s down for rename: %w", a.Name, err)
			}
		}
		if err := h.ctr.LinkSetName(l, plan.IfName); err != nil {
			return false, fmt.Errorf("rename %s to %s: %w", a.Name, plan.IfName, err)
		}
		changed = true
	}
	if a.HardwareAddr.String() != plan.MAC {
		mac, _ := net.ParseMAC(plan.MAC)
		if err := h.ctr.LinkSetHardwareAddr(l, mac); err != nil {
			return false, fmt.Errorf("set mac of %s: %w", plan.IfName, err)
		}
		changed = true
	}
	if a.MTU != plan.MTU {
		if err := h.ctr.LinkSetMTU(l, plan.MTU); err != nil {
			return false, fmt.Errorf("set mtu of %s: %w", plan.IfName, err)
		}
		changed = true
	}
	if fresh || a.Flags&net.FlagUp == 0 {
		if err := h.ctr.LinkSetUp(l); err != nil {
			return false, fmt.Errorf("set %s up: %w", plan.IfName, err)
		}
		changed = changed || !fresh
	}
	// The loopback of a fresh sandbox is down; nothing works without it.
	if lo, err := h.ctr.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.ctr.LinkSetUp(lo); err != nil {
			return false, fmt.Errorf("set lo up: %w", err)
		}
	}
	c, err := p.syncAddrs(h, l, plan)
	if err != nil {
		return false, err
	}
	changed = changed || c
	c, err = p.syncRoutes(h, l, plan)
	if err != nil {
		return false, err
	}
	return changed || c, nil
}

func (p *Plumber) syncAddrs(h *handles, l netlink.Link, plan Plan) (bool, error) {
	have, err := dump(p, "list addresses of "+plan.IfName, func() ([]netlink.Addr, error) {
		return h.ctr.AddrList(l, netlink.FAMILY_ALL)
	})
	if err != nil {
		return false, err
	}
	changed := false
	want := map[netip.Prefix]bool{}
	for _, a := range plan.Addrs {
		want[a] = true
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		pfx, ok := toPrefix(a.IPNet)
		if !ok {
			continue
		}
		if want[pfx] {
			present[pfx] = true
			continue
		}
		if pfx.Addr().IsLinkLocalUnicast() {
			continue // the kernel's own fe80:: address
		}
		if err := h.ctr.AddrDel(l, &a); err != nil {
			return false, fmt.Errorf("remove stale address %v from %s: %w", pfx, plan.IfName, err)
		}
		changed = true
	}
	for _, a := range plan.Addrs {
		if present[a] {
			continue
		}
		addr := &netlink.Addr{IPNet: toIPNet(a)}
		if a.Addr().Is6() {
			// Neutron guarantees uniqueness; waiting out DAD would delay the gateway route.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.ctr.AddrAdd(l, addr); err != nil {
			return false, fmt.Errorf("add address %v to %s: %w", a, plan.IfName, err)
		}
		changed = true
	}
	return changed, nil
}

func (p *Plumber) syncRoutes(h *handles, l netlink.Link, plan Plan) (bool, error) {
	have, err := dump(p, "list routes of "+plan.IfName, func() ([]netlink.Route, error) {
		return h.ctr.RouteList(l, netlink.FAMILY_ALL)
	})
	if err != nil {
		return false, err
	}
	changed := false
	for _, r := range plan.Routes {
		dst := toIPNet(r.Dst)
		var gw net.IP
		if r.Gateway.IsValid() {
			gw = net.IP(r.Gateway.AsSlice())
		}
		if slices.ContainsFunc(have, func(h netlink.Route) bool {
			d := h.Dst
			if d == nil { // the kernel reports default routes with a nil Dst
				d = &net.IPNet{IP: net.IP(make([]byte, len(dst.IP))), Mask: net.CIDRMask(0, 8*len(dst.IP))}
			}
			return d.String() == dst.String() && h.Gw.Equal(gw)
		}) {
			continue
		}
		route := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: gw}
		if gw == nil {
			route.Scope = netlink.SCOPE_LINK
		}
		if err := h.ctr.RouteReplace(route); err != nil {
			return false, fmt.Errorf("add route %v on %s: %w", r, plan.IfName, err)
		}
		changed = true
	}
	return changed, nil
}

// Unplug deletes the host end of the port's veth pair (the kernel removes the peer with it).
// A missing device is not an error.
func (p *Plumber) Unplug(ctx context.Context, portID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("unplug port %s: host netlink handle: %w", portID, err)
	}
	defer h.Close()
	name := TapName(portID)
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unplug port %s: look up %s: %w", portID, name, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("unplug port %s: %s is a %s, not our veth: %w", portID, name, l.Type(), ErrConflict)
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("unplug port %s: delete %s: %w", portID, name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

func tempName() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("temporary interface name: %w", err)
	}
	return "ncatmp" + hex.EncodeToString(b[:]), nil
}

func toIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
