// Command imgconvert is the benchmark driver for our qcow2 → Docker image path:
// images.Convert streamed into the Engine API through images/store.ConvertFile,
// exactly what `nova-container-agent image convert` runs. With -null it only
// converts to /dev/null, measuring the reader side alone. With -ensure SHA512 it
// goes through store.Ensure instead, reading FILE as if it were the Glance
// download: spool file, checksum verification and holdback included.
//
//	imgconvert [-null] [-progress] FILE TAG
//	imgconvert -ensure SHA512 -prefix P FILE IMAGE_ID
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/moby/moby/client"

	"github.com/nova-container-agent/nova-container-agent/images/store"
)

func main() {
	null := flag.Bool("null", false, "convert to /dev/null instead of importing")
	progress := flag.Bool("progress", false, "print progress to stderr")
	ensure := flag.String("ensure", "", "sha512 of FILE: convert through store.Ensure (spooled, verified)")
	prefix := flag.String("prefix", "nca-bench", "tag prefix for -ensure")
	flag.Parse()
	if flag.NArg() != 2 && !(*null && flag.NArg() == 1) {
		fmt.Fprintln(os.Stderr, "usage: imgconvert [-null] [-progress] FILE TAG")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *ensure != "" {
		err = runEnsure(ctx, *ensure, *prefix, flag.Arg(0), flag.Arg(1))
	} else {
		err = run(ctx, *null, *progress, flag.Arg(0), flag.Arg(1))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imgconvert:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, null, progress bool, path, tag string) error {
	conv := store.ImagesConverter()
	start := time.Now()
	if null {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		cw := &counter{}
		if err := conv.Convert(ctx, f, st.Size(), cw); err != nil {
			return err
		}
		fmt.Printf("converted %s: %d tar bytes in %.2fs\n", path, cw.n, time.Since(start).Seconds())
		return nil
	}
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	eng := store.NewDocker(cli)
	if err := eng.Ping(ctx); err != nil {
		return err
	}
	opt := store.FileOptions{}
	if progress {
		opt.Progress, opt.TTY = os.Stderr, isTTY(os.Stderr)
	}
	res, err := store.ConvertFile(ctx, eng, conv, path, tag, opt)
	if err != nil {
		return err
	}
	fmt.Printf("imported %s as %s (%s): read %d, tar %d bytes in %.2fs\n", path, tag, res.ImageID, res.Read, res.Written, res.Elapsed.Seconds())
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*counter)(nil)

func isTTY(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runEnsure(ctx context.Context, sha, prefix, path, imageID string) error {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	eng := store.NewDocker(cli)
	if err := eng.Ping(ctx); err != nil {
		return err
	}
	st, err := store.New(eng, store.ImagesConverter(), store.Options{Prefix: prefix, SpoolDir: os.Getenv("SPOOL_DIR")})
	if err != nil {
		return err
	}
	start := time.Now()
	tag, err := st.Ensure(ctx, imageID, store.Checksum{Algo: "sha512", Value: sha}, func(context.Context) (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("ensured %s as %s in %.2fs\n", path, tag, time.Since(start).Seconds())
	return nil
}
