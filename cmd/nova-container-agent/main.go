// Command nova-container-agent replaces nova-compute (and neutron's OVS
// agent) on a container host.
//
//	nova-container-agent --config-file FILE [--config-file FILE...]   run the agent
//	nova-container-agent doctor --config-file FILE [...]              check the host's dependencies
//	nova-container-agent --version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// subcommand is one entry of the command table. run gets the arguments
// after the subcommand's name and returns the process exit code.
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// subcommands is the table of subcommands; add new ones (e.g. "image") here.
func subcommands() []subcommand {
	return []subcommand{
		{name: "doctor", summary: "check RabbitMQ, keystone, placement, Docker, OVS and lxcfs", run: runDoctor},
		{name: "image", summary: "image convert FILE --tag NAME: a QCOW2/raw disk to a container image", run: runImage},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand or runs the agent; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		for _, sc := range subcommands() {
			if sc.name == args[0] {
				return sc.run(ctx, args[1:], stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("nova-container-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	var files configFiles
	fs.Var(&files, "config-file", "configuration file; repeat for several, later ones override earlier ones")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(files)
	if err != nil {
		fmt.Fprintf(stderr, "nova-container-agent: %v\n", err)
		return 1
	}
	level := slog.LevelInfo
	if cfg.Default.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("starting", "version", version, "host", cfg.Default.Host, "config_files", strings.Join(cfg.Files, ","))
	if err := runAgent(ctx, cfg, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("agent stopped", "error", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage:\n  nova-container-agent --config-file FILE [--config-file FILE...]\n  nova-container-agent --version\n")
	for _, sc := range subcommands() {
		fmt.Fprintf(w, "  nova-container-agent %s --config-file FILE [...]\t%s\n", sc.name, sc.summary)
	}
}

// configFiles collects repeated --config-file flags in order.
type configFiles []string

func (c *configFiles) String() string { return strings.Join(*c, ",") }

func (c *configFiles) Set(v string) error {
	if v == "" {
		return errors.New("empty file name")
	}
	*c = append(*c, v)
	return nil
}
