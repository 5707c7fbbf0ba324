package qcow2

import (
	"io"

	"github.com/klauspost/compress/flate"
)

func flateWriter(w io.Writer) (io.WriteCloser, error) {
	return flate.NewWriter(w, flate.BestSpeed)
}
