package cloud

import (
	"bytes"
	"errors"
	"io"
)

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// bytesReader returns a seekable reader, so gophercloud can rewind it when
// it re-sends a request after re-authenticating.
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
