package qcow2

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// decoder inflates one compressed cluster. Instances are pooled: building a zstd decoder or a
// flate reader allocates tables that are worth reusing across thousands of clusters.
type decoder struct {
	typ  uint8
	fl   io.ReadCloser
	zstd *zstd.Decoder
}

func newDecoder(typ uint8) *decoder { return &decoder{typ: typ} }

// decode fills out completely from the stream in src; a stream that ends early is an error
// (qemu requires every compressed cluster to inflate to exactly one cluster).
func (d *decoder) decode(src io.Reader, out []byte) error {
	var r io.Reader
	switch d.typ {
	case compressionZlib:
		// qemu writes raw deflate (no zlib header), window bits -12.
		if d.fl == nil {
			d.fl = flate.NewReader(src)
		} else if err := d.fl.(flate.Resetter).Reset(src, nil); err != nil {
			return fmt.Errorf("reset inflater: %w", err)
		}
		r = d.fl
	case compressionZstd:
		if d.zstd == nil {
			// The window bound keeps a hostile frame header from asking for gigabytes; qemu's
			// compressor never needs more than one (≤ 2 MiB) cluster of history.
			z, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(16<<20))
			if err != nil {
				return fmt.Errorf("new zstd decoder: %w", err)
			}
			d.zstd = z
		} else if err := d.zstd.Reset(src); err != nil {
			return fmt.Errorf("reset zstd decoder: %w", err)
		}
		r = d.zstd
	default:
		return fmt.Errorf("compression type %d", d.typ)
	}
	if _, err := io.ReadFull(r, out); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}
