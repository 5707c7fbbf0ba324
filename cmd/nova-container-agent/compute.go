package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

// runCompute assembles the compute service from the configuration and runs it until ctx ends:
// RabbitMQ connection, conductor readiness, registration, the compute RPC server and the
// periodic tasks, in nova-compute's order (the RPC server starts after registration).
func runCompute(ctx context.Context, cfg *config.Config, log *slog.Logger, lc *agent.Lifecycle) error {
	d := cfg.Default
	conn, err := rpc.Dial(ctx, d.TransportURL, rpc.WithLogger(log), rpc.WithBinary("nova-compute"))
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()

	cond := conductor.New(agent.ConductorTransport{RPC: conn, Timeout: time.Duration(d.RPCResponseTimeout) * time.Second},
		conductor.WithLogger(log))
	log.Info("waiting for nova-conductor")
	if err := cond.WaitReady(ctx, conductor.AdminContext(time.Now(), conductor.NewRequestID())); err != nil {
		return fmt.Errorf("wait for nova-conductor: %w", err)
	}

	sess, err := cloud.NewSession(ctx, cfg.Placement.KeystoneAuth)
	if err != nil {
		return fmt.Errorf("placement credentials: %w", err)
	}
	placement, err := cloud.NewPlacement(sess, cfg.Placement.EndpointOverride)
	if err != nil {
		return err
	}

	mgr, err := agent.New(managerOptions(cfg), cond, placement, log)
	if err != nil {
		return err
	}
	if lc != nil {
		mgr.SetLifecycle(lc)
	}
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	log.Info("compute service registered", "host", d.Host)
	if err := mgr.InitHost(ctx); err != nil {
		// Per-instance problems are logged; the host still serves the others.
		log.Error("init host", "err", err)
	}

	errc := make(chan error, 1)
	go func() {
		errc <- conn.Serve(ctx, rpc.Target{Exchange: "nova", Topic: agent.Topic, Server: d.Host},
			rpc.NewDispatcher(mgr.Endpoints()...))
	}()
	go mgr.RunPeriodic(ctx)
	go mgr.WatchPowerEvents(ctx)
	go mgr.RunPowerSync(ctx, time.Duration(d.SyncPowerStateInterval)*time.Second)
	defer mgr.Wait()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("compute RPC server: %w", err)
		}
		return nil
	case <-ctx.Done():
		// Serve drains requests in flight before returning.
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("compute RPC server: %w", err)
		}
		return nil
	}
}

func managerOptions(cfg *config.Config) agent.Options {
	d := cfg.Default
	ratio := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return agent.Options{
		Host:                    d.Host,
		HostIP:                  d.MyIP,
		StatePath:               d.StatePath,
		InstancesPath:           d.InstancesPath,
		ProcRoot:                "/proc",
		ReportInterval:          time.Duration(d.ReportInterval) * time.Second,
		UpdateResourcesInterval: time.Duration(d.UpdateResourcesInterval) * time.Second,
		Ratios: agent.Ratios{
			CPU: ratio(d.CPUAllocationRatio), RAM: ratio(d.RAMAllocationRatio), Disk: ratio(d.DiskAllocationRatio),
			InitialCPU: d.InitialCPUAllocationRatio, InitialRAM: d.InitialRAMAllocationRatio, InitialDisk: d.InitialDiskAllocationRatio,
		},
		Reserved:                    agent.Reserved{MemoryMB: d.ReservedHostMemoryMB, DiskMB: d.ReservedHostDiskMB, CPUs: d.ReservedHostCPUs},
		ResumeGuestsStateOnHostBoot: d.ResumeGuestsStateOnHostBoot,
	}
}
