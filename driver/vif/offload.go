package vif

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Open vSwitch's userspace datapath (datapath_type=netdev) forwards what it reads from a veth
// as is: a TCP or UDP segment the sender's kernel left with a partial checksum (TX checksum
// offload, on by default for veth) reaches the receiver unfinished and is dropped there, while
// ICMP, checksummed in software, still passes. So with netdev every veth end must compute its
// checksums in software; the kernel datapath finishes them itself and keeps the offload.

// ethtool's legacy TX checksum command and the ioctl that carries it (linux/ethtool.h,
// linux/sockios.h).
const (
	siocEthtool    = 0x8946
	ethtoolSTXCsum = 0x00000017
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// setTxChecksum switches TX checksum offload of device name in the current network namespace.
func setTxChecksum(name string, on bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: ethtoolSTXCsum}
	if on {
		v.data = 1
	}
	var req ifreqData
	copy(req.name[:unix.IFNAMSIZ-1], name)
	req.data = uintptr(unsafe.Pointer(&v))
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("ethtool tx checksum %s: %w", name, errno)
	}
	runtime.KeepAlive(&v)
	return nil
}

// inNetNS runs fn on a thread switched into ns, in a goroutine of its own so that no other
// goroutine ever runs in the wrong namespace. The thread is discarded if it cannot go back.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime then terminates it with the goroutine.
			errc <- fmt.Errorf("return from netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// softwareChecksums turns TX checksum offload off on both ends of the port's veth.
func (p *Plumber) softwareChecksums(h *handles, plan Plan) error {
	if err := setTxChecksum(plan.HostName(), false); err != nil {
		return err
	}
	return inNetNS(h.ns, func() error { return setTxChecksum(plan.IfName, false) })
}

// ethtoolGTXCsum reads TX checksum offload (linux/ethtool.h).
const ethtoolGTXCsum = 0x00000016

// txChecksum reports whether TX checksum offload is on for device name in the current namespace.
func txChecksum(name string) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: ethtoolGTXCsum}
	var req ifreqData
	copy(req.name[:unix.IFNAMSIZ-1], name)
	req.data = uintptr(unsafe.Pointer(&v))
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return false, fmt.Errorf("ethtool get tx checksum %s: %w", name, errno)
	}
	runtime.KeepAlive(&v)
	return v.data != 0, nil
}
