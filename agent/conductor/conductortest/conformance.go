package conductortest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/objects"
)

// RunConformance checks behaviour that both this fake and a real Zed nova-conductor must
// show, using only records it creates itself (a Service and ComputeNode for host, which
// must be unique to the run; both are destroyed at the end). Run it against the fake in
// unit tests and against the real conductor under the integration tag.
func RunConformance(t *testing.T, c *conductor.Client, host string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := func() map[string]any { return conductor.AdminContext(time.Now(), conductor.NewRequestID()) }

	t.Run("ping", func(t *testing.T) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Ping(pctx, admin()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})

	t.Run("service lifecycle", func(t *testing.T) {
		if _, err := c.ServiceGetByHostAndBinary(ctx, admin(), host, "nova-compute"); !errors.Is(err, conductor.ErrNotFound) {
			t.Fatalf("get absent service: err = %v, want ErrNotFound", err)
		}
		svc := objects.NewService(host, "nova-compute", "compute")
		if err := c.ServiceCreate(ctx, admin(), svc); err != nil {
			t.Fatalf("create: %v", err)
		}
		defer func() {
			if _, err := c.ObjectAction(ctx, admin(), svc.Object, "destroy", nil, nil); err != nil {
				t.Errorf("destroy service: %v", err)
			}
		}()
		if svc.ID() == 0 || svc.UUID() == "" {
			t.Fatalf("create reply not applied: id=%d uuid=%q", svc.ID(), svc.UUID())
		}
		if ch, _ := svc.WhatChanged(); len(ch) != 0 {
			t.Fatalf("changes after create = %v, want none", ch)
		}
		dup := objects.NewService(host, "nova-compute", "compute")
		if err := c.ServiceCreate(ctx, admin(), dup); !errors.Is(err, conductor.ErrConflict) {
			t.Fatalf("duplicate create: err = %v, want ErrConflict", err)
		}
		if _, seen := svc.LastSeenUp(); seen {
			t.Fatal("fresh service already has last_seen_up")
		}
		if err := c.ServiceHeartbeat(ctx, admin(), svc); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if _, seen := svc.LastSeenUp(); !seen || svc.ReportCount() != 1 {
			t.Fatalf("after heartbeat: last_seen_up set=%v report_count=%d", seen, svc.ReportCount())
		}
		got, err := c.ServiceGetByHostAndBinary(ctx, admin(), host, "nova-compute")
		if err != nil || got.UUID() != svc.UUID() || got.ReportCount() != 1 || got.ServiceVersion() != objects.ServiceVersion {
			t.Fatalf("get after heartbeat: %v, %v", got, err)
		}
		if v, err := c.ServiceGetMinimumVersion(ctx, admin(), "nova-compute"); err != nil || v <= 0 {
			t.Fatalf("minimum version = %d, %v", v, err)
		}
	})

	t.Run("compute node lifecycle", func(t *testing.T) {
		if _, err := c.ComputeNodeGetByHostAndNodename(ctx, admin(), host, host); !errors.Is(err, conductor.ErrNotFound) {
			t.Fatalf("get absent node: err = %v, want ErrNotFound", err)
		}
		var re conductor.RemoteError
		_, err := c.ComputeNodeGetByHostAndNodename(ctx, admin(), host, host)
		if !errors.As(err, &re) || re.ExceptionClass() != "ComputeHostNotFound" {
			t.Fatalf("absent node: %v is not a ComputeHostNotFound RemoteError", err)
		}
		cn := objects.NewComputeNode()
		for k, v := range map[string]any{
			"host": host, "hypervisor_hostname": host, "hypervisor_type": "docker", "hypervisor_version": 1,
			"vcpus": 2, "vcpus_used": 0, "memory_mb": 1024, "memory_mb_used": 0, "local_gb": 10, "local_gb_used": 0,
			"disk_available_least": 10, "cpu_info": "{}", "host_ip": "127.0.0.1", "numa_topology": nil,
			"cpu_allocation_ratio": 16.0, "ram_allocation_ratio": 1.5, "disk_allocation_ratio": 1.0,
			"stats": map[string]string{}, "supported_hv_specs": []*objects.Object{objects.NewHVSpec("x86_64", "docker", "exe")},
			"uuid": uuid.NewString(),
		} {
			if err := cn.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.ComputeNodeCreate(ctx, admin(), cn); err != nil {
			t.Fatalf("create node: %v", err)
		}
		defer func() {
			if _, err := c.ObjectAction(ctx, admin(), cn.Object, "destroy", nil, nil); err != nil {
				t.Errorf("destroy node: %v", err)
			}
		}()
		if cn.ID() == 0 {
			t.Fatal("node create reply not applied")
		}
		if err := cn.Set("vcpus_used", 1); err != nil {
			t.Fatal(err)
		}
		if err := c.ComputeNodeSave(ctx, admin(), cn); err != nil {
			t.Fatalf("save node: %v", err)
		}
		got, err := c.ComputeNodeGetByHostAndNodename(ctx, admin(), host, host)
		if err != nil || got.UUID() != cn.UUID() {
			t.Fatalf("get node: %v, %v", got, err)
		}
		var used int
		if err := got.Get("vcpus_used", &used); err != nil || used != 1 {
			t.Fatalf("vcpus_used after save = %d, %v", used, err)
		}
	})

	t.Run("missing instance", func(t *testing.T) {
		id := uuid.NewString()
		if _, err := c.InstanceGetByUUID(ctx, admin(), id, nil); !errors.Is(err, conductor.ErrNotFound) {
			t.Fatalf("get absent instance: %v", err)
		}
		err := c.EventStart(ctx, admin(), objects.ActionEvent{InstanceUUID: id, Name: "compute_stop_instance"}, host)
		if cls, _ := conductor.ExceptionClass(err); cls != "InstanceActionNotFound" {
			t.Fatalf("event_start without action: %v", err)
		}
	})
}
