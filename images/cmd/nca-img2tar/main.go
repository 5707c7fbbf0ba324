// Command nca-img2tar converts a qcow2 or raw VM disk image into a container tar layer on stdout
// (or -o FILE), printing what it found and did to stderr as JSON. It is the manual and benchmark
// front end of images.Convert:
//
//	nca-img2tar debian12.qcow2 | docker import - vmlike/debian12
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images"
	"github.com/nova-container-agent/nova-container-agent/images/qcow2"
)

func main() {
	out := flag.String("o", "-", "output tar file (- for stdout)")
	raw := flag.Bool("no-adapt", false, "write the root filesystem unchanged")
	part := flag.Int("partition", 0, "force the root partition number")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] IMAGE\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, flag.Arg(0), *out, *raw, *part); err != nil {
		fmt.Fprintln(os.Stderr, "nca-img2tar:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, in, out string, noAdapt bool, part int) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if out != "-" {
		of, err := os.Create(out)
		if err != nil {
			return err
		}
		defer of.Close()
		w = of
	}
	opts := []images.Option{images.WithBackingOpener(qcow2.DirOpener(filepath.Dir(in)))}
	if noAdapt {
		opts = append(opts, images.WithoutAdaptation())
	}
	if part != 0 {
		opts = append(opts, images.WithPartition(part))
	}
	start := time.Now()
	res, err := images.Convert(ctx, f, st.Size(), w, opts...)
	el := time.Since(start)
	if res != nil {
		enc := json.NewEncoder(os.Stderr)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		fmt.Fprintf(os.Stderr, "wall %.2fs, %d entries, %.1f MB data (%.1f MB/s), %.1f MB tar, image file %.1f MB\n",
			el.Seconds(), res.Entries, float64(res.DataBytes)/1e6, float64(res.DataBytes)/1e6/el.Seconds(),
			float64(res.TarBytes)/1e6, float64(st.Size())/1e6)
	}
	return err
}
