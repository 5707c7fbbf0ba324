package store

import "io"

// holdbackSize is how many trailing bytes of the tar stream are withheld until
// the download is verified. It covers archive/tar's 1 KiB end-of-archive marker
// with a wide margin for padding other writers may add.
const holdbackSize = 64 << 10

// holdbackWriter forwards everything but (at least) the last holdbackSize bytes
// written to it. Only Release sends the tail. If the checksum of the download turns out
// wrong, the tail is never sent, so Docker never sees a complete archive and
// cannot commit a layer built from unverified bytes — whatever it does with a
// request body that ends in an error.
type holdbackWriter struct {
	w   io.Writer
	buf []byte
}

func newHoldback(w io.Writer) *holdbackWriter {
	return &holdbackWriter{w: w, buf: make([]byte, 0, 2*holdbackSize)}
}

// Write implements io.Writer. Small writes (tar headers are 512 bytes) only
// append; the buffer is flushed down to holdbackSize once it holds twice that,
// so the tail is moved once per holdbackSize bytes written, not once per Write.
func (h *holdbackWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= holdbackSize {
		// Flush what we hold plus all of p except its tail, then hold the tail.
		if len(h.buf) > 0 {
			if _, err := h.w.Write(h.buf); err != nil {
				return 0, err
			}
		}
		if _, err := h.w.Write(p[:len(p)-holdbackSize]); err != nil {
			return 0, err
		}
		h.buf = append(h.buf[:0], p[len(p)-holdbackSize:]...)
		return n, nil
	}
	h.buf = append(h.buf, p...)
	if len(h.buf) >= 2*holdbackSize {
		over := len(h.buf) - holdbackSize
		if _, err := h.w.Write(h.buf[:over]); err != nil {
			return 0, err
		}
		h.buf = h.buf[:copy(h.buf, h.buf[over:])]
	}
	return n, nil
}

// Release sends the withheld tail.
func (h *holdbackWriter) Release() error {
	_, err := h.w.Write(h.buf)
	h.buf = h.buf[:0]
	return err
}
