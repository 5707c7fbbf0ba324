package ovstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ovn-kubernetes/libovsdb/client"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/nova-container-agent/nova-container-agent/ovs/ovsdb"
)

// EmulateVSwitchd starts a loop that does the one thing of ovs-vswitchd the agent depends on:
// give every Interface an ofport (1, 2, 3, ... in order of discovery). It stops when t ends.
func (s *Server) EmulateVSwitchd(t testing.TB) {
	t.Helper()
	clientModel, err := ovsdb.Model()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewOVSDBClient(clientModel, client.WithEndpoint(s.endpoint))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Connect(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	var ifc ovsdb.Interface
	if _, err := c.Monitor(ctx, c.NewMonitor(client.WithTable(&ifc, &ifc.Name, &ifc.OFPort))); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; c.Disconnect() })
	go func() {
		defer close(done)
		next := 1
		for ctx.Err() == nil {
			if err := assignOFPorts(ctx, c, &next); err != nil && ctx.Err() == nil {
				t.Logf("fake vswitchd: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
}

func assignOFPorts(ctx context.Context, c client.Client, next *int) error {
	var ifaces []ovsdb.Interface
	if err := c.WhereCache(func(i *ovsdb.Interface) bool { return i.OFPort == nil }).List(ctx, &ifaces); err != nil {
		return err
	}
	for i := range ifaces {
		ifc := &ifaces[i]
		n := *next
		*next++
		ifc.OFPort = &n
		ops, err := c.Where(ifc).Update(ifc, &ifc.OFPort)
		if err != nil {
			return err
		}
		res, err := c.Transact(ctx, ops...)
		if err != nil {
			return err
		}
		if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
			return fmt.Errorf("set ofport of %s: %w", ifc.Name, err)
		}
	}
	return nil
}
