package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// checkTimeout bounds each doctor check so one dead service cannot hang the
// whole report.
const checkTimeout = 15 * time.Second

// check is one line of the doctor's report. run returns nil for "ok", or
// an error whose message says what is wrong; hint says what to do.
type check struct {
	name string
	hint string
	run  func(ctx context.Context) error
}

// runDoctor loads the configuration and runs every check, printing one
// line each. The exit code is 1 if any check fails.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files configFiles
	fs.Var(&files, "config-file", "configuration file; repeat for several")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(files)
	if err != nil {
		fmt.Fprintf(stdout, "%-22s FAIL %v\n", "config", err)
		fmt.Fprintf(stdout, "%-22s hint: fix the configuration file(s) named above\n", "")
		return 1
	}
	fmt.Fprintf(stdout, "%-22s ok (%s)\n", "config", strings.Join(cfg.Files, ", "))
	failed := 0
	for _, c := range doctorChecks(cfg) {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := c.run(cctx)
		cancel()
		if err == nil {
			fmt.Fprintf(stdout, "%-22s ok\n", c.name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "%-22s FAIL %v\n", c.name, err)
		if c.hint != "" {
			fmt.Fprintf(stdout, "%-22s hint: %s\n", "", c.hint)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d check(s) failed\n", failed)
		return 1
	}
	return 0
}

// doctorChecks lists the checks for cfg, in dependency order.
func doctorChecks(cfg *config.Config) []check {
	var checks []check
	checks = append(checks, check{name: "rabbitmq",
		hint: "check [DEFAULT] transport_url (user, password, host, vhost) and that RabbitMQ listens there",
		run:  func(ctx context.Context) error { return checkRabbit(ctx, cfg.Default.TransportURL) }})
	for _, s := range []struct {
		group string
		auth  config.KeystoneAuth
		need  bool
	}{{"placement", cfg.Placement.KeystoneAuth, true}, {"neutron", cfg.Neutron.KeystoneAuth, true},
		{"glance", cfg.Glance.KeystoneAuth, false}, {"service_user", cfg.ServiceUser.KeystoneAuth, cfg.ServiceUser.SendServiceUserToken}} {
		if !s.need && !s.auth.Configured() {
			continue
		}
		s := s
		checks = append(checks, check{name: "keystone/" + s.group,
			hint: fmt.Sprintf("check [%s] auth_url, username, password, project and domain names", s.group),
			run: func(ctx context.Context) error {
				sess, err := cloud.NewSession(ctx, s.auth, cloud.WithUserAgent("nova-container-agent-doctor/"+version))
				if err != nil {
					return err
				}
				_, err = sess.Token(ctx)
				return err
			}})
	}
	checks = append(checks,
		check{name: "placement", hint: "check the placement endpoint in the catalog ([placement] region_name, valid_interfaces) or endpoint_override",
			run: func(ctx context.Context) error { return checkPlacement(ctx, cfg.Placement) }},
		check{name: "docker", hint: "start dockerd (Debian 12: docker.io 20.10 speaks API 1.41) or fix [container] docker_host",
			run: func(ctx context.Context) error {
				return checkDocker(ctx, cfg.Container.DockerHost, cfg.Container.MinDockerAPIVersion)
			}},
		check{name: "ovs", hint: "start Open vSwitch and create the bridge: ovs-vsctl add-br " + cfg.OVS.IntegrationBridge +
			" -- set bridge " + cfg.OVS.IntegrationBridge + " datapath_type=" + cfg.OVS.DatapathType,
			run: func(ctx context.Context) error {
				return checkOVS(ctx, cfg.OVS.OVSDBConnection, cfg.OVS.IntegrationBridge)
			}},
		check{name: "lxcfs", hint: "install and start lxcfs (apt-get install lxcfs; lxcfs " + cfg.Container.LXCFSPath + ") or fix [container] lxcfs_path",
			run: func(ctx context.Context) error { return checkLXCFS(cfg.Container.LXCFSPath) }},
	)
	return checks
}

// checkRabbit opens an AMQP connection and a channel on the first broker of
// the transport URL that answers.
func checkRabbit(ctx context.Context, transportURL string) error {
	tu, err := config.ParseTransportURL(transportURL)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range tu.AMQPURLs() {
		dialer := &net.Dialer{}
		conn, err := amqp.DialConfig(u, amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		}})
		if err != nil {
			errs = append(errs, fmt.Errorf("connect to %s: %w", redactAMQP(u), err))
			continue
		}
		ch, err := conn.Channel()
		if err != nil {
			conn.Close()
			errs = append(errs, fmt.Errorf("open a channel on %s: %w", redactAMQP(u), err))
			continue
		}
		ch.Close()
		conn.Close()
		return nil
	}
	return errors.Join(errs...)
}

func redactAMQP(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***" + u[at:]
		}
	}
	return u
}

// checkPlacement reads placement's version document with the [placement]
// credentials and requires the microversions nova Zed uses (up to 1.28
// for consumer generations; 1.36 is Zed's minimum placement anyway).
func checkPlacement(ctx context.Context, p config.Placement) error {
	sess, err := cloud.NewSession(ctx, p.KeystoneAuth)
	if err != nil {
		return fmt.Errorf("no token, so no catalog: %w", err)
	}
	pl, err := cloud.NewPlacement(sess, p.EndpointOverride)
	if err != nil {
		return err
	}
	v, err := pl.Version(ctx)
	if err != nil {
		return err
	}
	major, minor, err := config.ParseAPIVersion(v.MaxVersion)
	if err != nil {
		return fmt.Errorf("placement at %s: %w", pl.Endpoint(), err)
	}
	if major != 1 || minor < 28 {
		return fmt.Errorf("placement at %s supports up to %s; need 1.28", pl.Endpoint(), v.MaxVersion)
	}
	return nil
}

// checkDocker pings the Docker daemon and compares its API version. It
// talks HTTP directly: /_ping answers with the API-Version header even when
// the client and daemon versions differ, which is the point of the check.
func checkDocker(ctx context.Context, host, minVersion string) error {
	scheme, addr, ok := strings.Cut(host, "://")
	if !ok {
		return fmt.Errorf("docker_host %q has no scheme", host)
	}
	var tr http.Transport
	base := "http://docker"
	switch scheme {
	case "unix":
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}
	case "tcp", "http":
		base = "http://" + addr
	default:
		return fmt.Errorf("docker_host scheme %q is not supported here", scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &tr}).Do(req)
	if err != nil {
		return fmt.Errorf("ping Docker at %s: %w", host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping Docker at %s: HTTP %d", host, resp.StatusCode)
	}
	got := resp.Header.Get("Api-Version")
	gMaj, gMin, err := config.ParseAPIVersion(got)
	if err != nil {
		return fmt.Errorf("Docker at %s sent no usable API-Version header (%q)", host, got)
	}
	wMaj, wMin, err := config.ParseAPIVersion(minVersion)
	if err != nil {
		return err
	}
	if gMaj < wMaj || (gMaj == wMaj && gMin < wMin) {
		return fmt.Errorf("Docker at %s speaks API %s, older than the required %s", host, got, minVersion)
	}
	return nil
}

// checkOVS connects to the OVSDB server and looks the integration bridge up
// with one JSON-RPC transact (select on Bridge by name).
func checkOVS(ctx context.Context, endpoint, bridge string) error {
	network, addr, ok := strings.Cut(endpoint, ":")
	if !ok || (network != "unix" && network != "tcp") {
		return fmt.Errorf("ovsdb_connection %q is not unix:PATH or tcp:HOST:PORT", endpoint)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("OVSDB at %s not reachable: %w", endpoint, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := map[string]any{"id": 1, "method": "transact", "params": []any{"Open_vSwitch",
		map[string]any{"op": "select", "table": "Bridge", "where": []any{[]any{"name", "==", bridge}}, "columns": []string{"name"}}}}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("OVSDB at %s: send: %w", endpoint, err)
	}
	dec := json.NewDecoder(bufio.NewReader(conn))
	for {
		var resp struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
			Result []struct {
				Rows  []map[string]any `json:"rows"`
				Error string           `json:"error"`
			} `json:"result"`
			Error any `json:"error"`
		}
		if err := dec.Decode(&resp); err != nil {
			return fmt.Errorf("OVSDB at %s: read: %w", endpoint, err)
		}
		if resp.Method == "echo" { // server keepalive; not our answer
			continue
		}
		if resp.Error != nil {
			return fmt.Errorf("OVSDB at %s: %v", endpoint, resp.Error)
		}
		if len(resp.Result) == 0 || resp.Result[0].Error != "" {
			return fmt.Errorf("OVSDB at %s: unexpected answer", endpoint)
		}
		if len(resp.Result[0].Rows) == 0 {
			return fmt.Errorf("integration bridge %s does not exist", bridge)
		}
		return nil
	}
}

// checkLXCFS reads lxcfs's meminfo, which is what containers' /proc/meminfo
// will be bind-mounted from.
func checkLXCFS(path string) error {
	p := filepath.Join(path, "proc", "meminfo")
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("lxcfs not mounted at %s: %w", path, err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "MemTotal:") {
		return fmt.Errorf("%s does not look like meminfo (%q, %v)", p, strings.TrimSpace(line), err)
	}
	return nil
}
