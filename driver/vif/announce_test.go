package vif

import (
	"encoding/hex"
	"net"
	"testing"
)

func TestGratuitousARPFrame(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:01:02:03")
	got := hex.EncodeToString(garp(mac, [4]byte{192, 0, 2, 14}))
	want := "ffffffffffff" + "fa163e010203" + "0806" + // Ethernet: broadcast, from the port, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"fa163e010203" + "c000020e" + "000000000000" + "c000020e" // sender = target = the address
	if got != want {
		t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
}
