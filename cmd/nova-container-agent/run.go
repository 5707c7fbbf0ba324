package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/agent"
	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
	"github.com/nova-container-agent/nova-container-agent/agent/neutron"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/driver"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
	"github.com/nova-container-agent/nova-container-agent/driver/vif"
	"github.com/nova-container-agent/nova-container-agent/images/store"
	"github.com/nova-container-agent/nova-container-agent/ovs"
	"github.com/nova-container-agent/nova-container-agent/ovs/flows"
)

// flowCookie marks every flow this agent owns, so reconciliation never touches another owner's.
const flowCookie = 0x4e43410000000001 // "NCA" + 1

// runAgent builds the container host from the configuration (Docker driver, image store, OVS,
// OpenStack clients) and runs the compute service until ctx ends.
func runAgent(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	lc, l2, cleanup, err := buildLifecycle(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	if l2 != nil {
		// The L2 agent runs beside the compute service for the life of the process.
		l2ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := l2.Run(l2ctx); err != nil && l2ctx.Err() == nil {
				log.Error("neutron L2 agent stopped: ports will not become ACTIVE", "err", err)
			}
		}()
		defer func() { cancel(); <-done }()
	}
	return runCompute(ctx, cfg, log, lc)
}

// buildLifecycle assembles the container host. In neutron_agent_mode=full it also returns the
// built-in L2 agent, which owns the OVS tags and flows; in compat mode that is left to a real
// neutron-openvswitch-agent and only the ports' external_ids are written here.
func buildLifecycle(ctx context.Context, cfg *config.Config, log *slog.Logger) (*agent.Lifecycle, *neutron.Agent, func(), error) {
	c := cfg.Container
	d := cfg.Default
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*agent.Lifecycle, *neutron.Agent, func(), error) {
		cleanup()
		return nil, nil, func() {}, err
	}

	docker, err := client.New(client.WithHost(c.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		return fail(fmt.Errorf("docker client: %w", err))
	}
	closers = append(closers, func() { docker.Close() })
	// Ownership is per host name: two agents on one machine (tests, or a migration between
	// agents) must never list, adopt or clean up each other's containers and ports.
	owner := "nova-container-agent." + d.Host
	so := spec.DefaultOptions()
	so.OwnerKey = owner
	so.LXCFSDir = c.LXCFSPath
	so.StopTimeout = c.StopTimeout
	if c.NamePrefix != "" {
		so.NamePrefix = c.NamePrefix
	}
	if c.CgroupParent != "" {
		so.CgroupParentRoot = c.CgroupParent
	}
	replug := &agent.ReplugHook{}
	drv, err := driver.New(ctx, docker, driver.WithLogger(log), driver.WithSpecOptions(so),
		driver.WithStateDir(filepath.Join(d.StatePath, "driver")), driver.WithReplug(replug.Replug))
	if err != nil {
		return fail(fmt.Errorf("container driver: %w", err))
	}

	spool := filepath.Join(c.ImageStorePath, "spool")
	for _, dir := range []string{spool, filepath.Join(c.ImageStorePath, "snapshots")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fail(fmt.Errorf("image store: %w", err))
		}
	}
	eng := store.NewDocker(docker)
	imgs, err := store.New(eng, store.ImagesConverter(), store.Options{SpoolDir: spool,
		MaxBytes: int64(c.ImageCacheSizeGB) << 30, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("image store: %w", err))
	}

	mappings, err := cfg.OVS.BridgeMappingsMap()
	if err != nil {
		return fail(err)
	}
	ovsc, err := ovs.Dial(ctx, cfg.OVS.OVSDBConnection, ovs.WithOwner(owner), ovs.WithIntegrationBridge(cfg.OVS.IntegrationBridge),
		ovs.WithBridgeMappings(mappings), ovs.WithDatapathType(cfg.OVS.DatapathType))
	if err != nil {
		return fail(fmt.Errorf("open vswitch: %w", err))
	}
	closers = append(closers, ovsc.Close)
	mode, err := neutron.ParseMode(c.NeutronAgentMode)
	if err != nil {
		return fail(err)
	}
	plugger := &agent.Plugger{OVS: ovsc, Plumber: vif.NewPlumber(vif.WithSoftwareChecksums(cfg.OVS.DatapathType == "netdev"))}
	var l2 *neutron.Agent
	if mode.ManagesDataplane() {
		sw := ovs.NewSwitch(ovsc, flows.NewApplier(flows.ExecRunner{}, flowCookie))
		if err := sw.Start(ctx); err != nil {
			return fail(fmt.Errorf("open vswitch bridges and flows: %w", err))
		}
		conn, err := rpc.Dial(ctx, d.TransportURL, rpc.WithLogger(log), rpc.WithBinary("neutron-openvswitch-agent"))
		if err != nil {
			return fail(fmt.Errorf("connect to RabbitMQ for the L2 agent: %w", err))
		}
		closers = append(closers, func() { conn.Close() })
		ncfg := neutron.DefaultConfig()
		ncfg.Mode = mode
		ncfg.IntegrationBridge = cfg.OVS.IntegrationBridge
		ncfg.BridgeMappings = mappings
		ncfg.DatapathType = cfg.OVS.DatapathType
		ncfg.HypervisorHostname = d.Host
		ncfg.RPCTimeout = time.Duration(d.RPCResponseTimeout) * time.Second
		ncfg.ReportInterval = time.Duration(cfg.Agent.ReportInterval * float64(time.Second))
		if cfg.Agent.PollingInterval > 0 {
			ncfg.PollingInterval = time.Duration(cfg.Agent.PollingInterval) * time.Second
		}
		if l2, err = neutron.NewAgent(conn, d.Host, ncfg, ovsc, neutron.NewSwitchDataplane(sw), log); err != nil {
			return fail(err)
		}
		agentL2 := l2
		plugger.PortPlugged = func(ctx context.Context, portID string) {
			// Report the device to neutron now; nova's wait for network-vif-plugged follows.
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
				defer cancel()
				if err := agentL2.Resync(rctx, portID); err != nil {
					log.Warn("report plugged port to neutron", "port", portID, "err", err)
				}
			}()
		}
	} else {
		log.Info("neutron agent mode compat: neutron-openvswitch-agent owns tags and flows")
	}

	sess, err := cloud.NewSession(ctx, cfg.Neutron.KeystoneAuth)
	if err != nil {
		return fail(fmt.Errorf("neutron credentials: %w", err))
	}
	var svcUser *cloud.Session
	if cfg.ServiceUser.SendServiceUserToken {
		if svcUser, err = cloud.NewSession(ctx, cfg.ServiceUser.KeystoneAuth); err != nil {
			return fail(fmt.Errorf("service_user credentials: %w", err))
		}
	}
	neutron, err := cloud.NewNeutron(sess, svcUser, cfg.Neutron.EndpointOverride, cfg.Neutron.HTTPRetries)
	if err != nil {
		return fail(err)
	}
	glanceSess := sess
	if cfg.Glance.Configured() {
		if glanceSess, err = cloud.NewSession(ctx, cfg.Glance.KeystoneAuth); err != nil {
			return fail(fmt.Errorf("glance credentials: %w", err))
		}
	}
	apiServer := ""
	if len(cfg.Glance.APIServers) > 0 {
		apiServer = cfg.Glance.APIServers[0]
	}
	glance, err := cloud.NewGlance(glanceSess, svcUser, apiServer, cfg.Glance.NumRetries)
	if err != nil {
		return fail(err)
	}
	return &agent.Lifecycle{
		Driver: drv, Images: imgs, Glance: glance, Neutron: neutron,
		ImageWriter: glance, SnapshotDir: filepath.Join(c.ImageStorePath, "snapshots"),
		Plugger:            plugger,
		Bridge:             cfg.OVS.IntegrationBridge,
		VIFPluggingTimeout: time.Duration(d.VIFPluggingTimeout) * time.Second,
		VIFPluggingIsFatal: d.VIFPluggingIsFatal,
		ShutdownTimeout:    time.Duration(c.StopTimeout) * time.Second,
		Replug:             replug,
	}, l2, cleanup, nil
}
