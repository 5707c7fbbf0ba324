package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/images/store"
)

// runImage is `nova-container-agent image convert FILE --tag NAME`: an operator's conversion
// of a local QCOW2 or raw disk into a runnable container image, with progress.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "convert" {
		fmt.Fprintln(stderr, "usage: nova-container-agent image convert FILE --tag NAME [--docker-host URL]")
		return 2
	}
	fs := flag.NewFlagSet("image convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tag := fs.String("tag", "", "image reference to import as, e.g. vmlike/debian12:latest")
	host := fs.String("docker-host", "unix:///var/run/docker.sock", "Docker API endpoint")
	// Accept the file before or after the flags, as operators type both.
	var file string
	rest := args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" || *tag == "" {
		fmt.Fprintln(stderr, "image convert: a FILE and --tag are required")
		return 2
	}
	c, err := client.New(client.WithHost(*host), client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(stderr, "image convert: docker client: %v\n", err)
		return 1
	}
	defer c.Close()
	eng := store.NewDocker(c)
	if err := eng.Ping(ctx); err != nil {
		fmt.Fprintf(stderr, "image convert: %v\n", err)
		return 1
	}
	tty := false
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	res, err := store.ConvertFile(ctx, eng, store.ImagesConverter(), file, *tag, store.FileOptions{Progress: stdout, TTY: tty})
	if err != nil {
		fmt.Fprintf(stderr, "image convert %s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: image %s (%.1f MB read, %.1f MB layer) in %.1f s\n", *tag, res.ImageID,
		float64(res.Read)/1e6, float64(res.Written)/1e6, res.Elapsed.Seconds())
	return 0
}
