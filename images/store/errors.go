package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the store. Callers test them with errors.Is; every error the
// store returns for an image wraps exactly one of them inside an *ImageError.
var (
	// ErrChecksumMismatch means the downloaded bytes do not hash to the checksum
	// Glance published: the download was corrupted or the image was replaced.
	ErrChecksumMismatch = errors.New("image checksum mismatch")
	// ErrBrokenImage means the image could not be converted: not a disk image the
	// converter understands, a damaged qcow2, no root filesystem found, and so on.
	ErrBrokenImage = errors.New("image cannot be converted")
	// ErrDownload means the image data could not be read from its source.
	ErrDownload = errors.New("image download failed")
	// ErrEngine means Docker refused or failed the import.
	ErrEngine = errors.New("container engine failed")
	// ErrInvalid means the caller passed an unusable image id, checksum or option.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound is returned by an Engine for an image it does not have.
	ErrNotFound = errors.New("not found")
	// ErrInUse is returned by an Engine that refuses to remove an image a
	// container still uses.
	ErrInUse = errors.New("image in use")
)

// ImageError describes why one Glance image could not be made available as a
// container image. Fault is meant for the instance fault record a user sees.
type ImageError struct {
	// ImageID is the Glance image id.
	ImageID string
	// Kind is one of the sentinel errors above.
	Kind error
	// Err is the underlying cause (may be nil).
	Err error
}

// Error implements error.
func (e *ImageError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("image %s: %v", e.ImageID, e.Kind)
	}
	return fmt.Sprintf("image %s: %v: %v", e.ImageID, e.Kind, e.Err)
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *ImageError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Fault returns a one-line, user-readable explanation suitable for nova's
// instance fault message (no Go error chain noise, no host paths).
func (e *ImageError) Fault() string {
	switch {
	case errors.Is(e.Kind, ErrChecksumMismatch):
		return fmt.Sprintf("Image %s failed checksum verification after download; it may be corrupt or was modified in Glance.", e.ImageID)
	case errors.Is(e.Kind, ErrBrokenImage):
		msg := fmt.Sprintf("Image %s cannot be run as a container: its disk could not be converted", e.ImageID)
		if e.Err != nil {
			msg += " (" + e.Err.Error() + ")"
		}
		return msg + "."
	case errors.Is(e.Kind, ErrDownload):
		return fmt.Sprintf("Image %s could not be downloaded from the image service.", e.ImageID)
	case errors.Is(e.Kind, ErrInvalid):
		return fmt.Sprintf("Image %s has unusable metadata: %v.", e.ImageID, e.Err)
	default:
		return fmt.Sprintf("Image %s could not be prepared on this host.", e.ImageID)
	}
}

func imageErr(id string, kind, err error) *ImageError {
	return &ImageError{ImageID: id, Kind: kind, Err: err}
}
