package vif

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A new instance often gets an address a deleted one had. Machines on the VLAN still map it
// to the old MAC and reach the new instance only once that entry expires (10-16 s measured
// with Linux peers). A gratuitous ARP for each IPv4 address, sent once the network is wired,
// updates their caches at once, as a VM's guest or a moved keepalived address does.

// Announce sends one gratuitous ARP request (sender and target both the address, to the
// broadcast MAC) for each IPv4 address of plan, from its device inside the namespace at
// netnsPath. IPv6 neighbours are left to the guest's own unsolicited advertisements.
func (p *Plumber) Announce(ctx context.Context, netnsPath string, plan Plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mac, err := net.ParseMAC(plan.MAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("announce port %s: mac %q: %v", plan.PortID, plan.MAC, err)
	}
	var frames [][]byte
	for _, a := range plan.Addrs {
		if a.Addr().Is4() {
			frames = append(frames, garp(mac, a.Addr().As4()))
		}
	}
	if len(frames) == 0 {
		return nil
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("announce port %s: open netns %s: %w", plan.PortID, netnsPath, err)
	}
	defer ns.Close()
	err = inNetNS(ns, func() error {
		ifc, err := net.InterfaceByName(plan.IfName)
		if err != nil {
			return fmt.Errorf("device %s: %w", plan.IfName, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index, Halen: 6,
			Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		var errs []error
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				errs = append(errs, fmt.Errorf("send on %s: %w", plan.IfName, err))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("announce port %s in %s: %w", plan.PortID, netnsPath, err)
	}
	return nil
}

// garp builds the Ethernet frame of a gratuitous ARP request for ip from mac (RFC 5227 §3's
// announcement).
func garp(mac net.HardwareAddr, ip [4]byte) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware type Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, 1) // request
	f = append(f, mac...)
	f = append(f, ip[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, ip[:]...)
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
