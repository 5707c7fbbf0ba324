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
	lc, cleanup, err := buildLifecycle(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	return runCompute(ctx, cfg, log, lc)
}

func buildLifecycle(ctx context.Context, cfg *config.Config, log *slog.Logger) (*agent.Lifecycle, func(), error) {
	c := cfg.Container
	d := cfg.Default
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*agent.Lifecycle, func(), error) { cleanup(); return nil, func() {}, err }

	docker, err := client.New(client.WithHost(c.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		return fail(fmt.Errorf("docker client: %w", err))
	}
	closers = append(closers, func() { docker.Close() })
	so := spec.DefaultOptions()
	so.LXCFSDir = c.LXCFSPath
	so.StopTimeout = c.StopTimeout
	if c.NamePrefix != "" {
		so.NamePrefix = c.NamePrefix
	}
	if c.CgroupParent != "" {
		so.CgroupParentRoot = c.CgroupParent
	}
	drv, err := driver.New(ctx, docker, driver.WithLogger(log), driver.WithSpecOptions(so),
		driver.WithStateDir(filepath.Join(d.StatePath, "driver")))
	if err != nil {
		return fail(fmt.Errorf("container driver: %w", err))
	}

	spool := filepath.Join(c.ImageStorePath, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return fail(fmt.Errorf("image store: %w", err))
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
	ovsc, err := ovs.Dial(ctx, cfg.OVS.OVSDBConnection, ovs.WithIntegrationBridge(cfg.OVS.IntegrationBridge),
		ovs.WithBridgeMappings(mappings), ovs.WithDatapathType(cfg.OVS.DatapathType))
	if err != nil {
		return fail(fmt.Errorf("open vswitch: %w", err))
	}
	closers = append(closers, ovsc.Close)
	if c.NeutronAgentMode == "compat" {
		// neutron-openvswitch-agent owns bridges and flows; we only plug ports.
		log.Info("neutron agent mode compat: leaving bridges and flows to neutron-openvswitch-agent")
	} else {
		sw := ovs.NewSwitch(ovsc, flows.NewApplier(flows.ExecRunner{}, flowCookie))
		if err := sw.Start(ctx); err != nil {
			return fail(fmt.Errorf("open vswitch bridges and flows: %w", err))
		}
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
		Plugger:            &agent.Plugger{OVS: ovsc, Plumber: vif.NewPlumber()},
		Bridge:             cfg.OVS.IntegrationBridge,
		VIFPluggingTimeout: time.Duration(d.VIFPluggingTimeout) * time.Second,
		VIFPluggingIsFatal: d.VIFPluggingIsFatal,
		ShutdownTimeout:    time.Duration(c.StopTimeout) * time.Second,
	}, cleanup, nil
}
