package store

import (
	"context"
	"io"

	"github.com/nova-container-agent/nova-container-agent/images"
)

// ImagesConverter returns images.Convert, with opts, as a Converter.
func ImagesConverter(opts ...images.Option) Converter {
	return ConverterFunc(func(ctx context.Context, r io.ReaderAt, size int64, w io.Writer) error {
		_, err := images.Convert(ctx, r, size, w, opts...)
		return err
	})
}
