// Package store makes Glance images available as Docker images for instances:
// it downloads an image once, verifies its checksum, converts the disk image into
// a root filesystem tar with a Converter (images.Convert) and imports that tar
// through the Docker Engine API, tagged <prefix>/<glance image id>:<checksum>.
//
// # Cache
//
// Docker is the cache index: every imported image carries the labels
// LabelManaged, LabelImageID and LabelChecksum, and the tag encodes id and
// checksum, so a restarted agent finds its images with one inspect and there
// is no second record that could disagree with Docker. Concurrent Ensure calls
// for the same (image, checksum) share one conversion (a single flight per tag);
// the conversion is cancelled only when every caller waiting for it gave up.
// GC removes the least recently used images beyond Options.MaxBytes and never
// an image that a container, running or stopped, uses.
//
// # Streaming a Glance download into a converter that needs io.ReaderAt
//
// A qcow2 file cannot be converted front to back: the header points at the L1
// table, L1 at L2 tables and refcount blocks, and those at data clusters, all at
// arbitrary offsets (qemu-img puts metadata first, but appended or rewritten
// images do not). Any io.ReaderAt over a one-pass HTTP body must therefore keep
// the bytes it has seen. The store writes the download to an unlinked spool file
// in Options.SpoolDir and serves ReadAt from it while the download continues; a
// read of bytes not yet downloaded blocks until they arrive. So:
//
//   - download, hashing and conversion overlap; the converter starts as soon as
//     the header is on disk;
//   - the spool holds the image as Glance stores it — compressed clusters stay
//     compressed, unallocated clusters take no space — never an expanded raw
//     disk (small test image: 267 MB spool for a 2 GiB disk; plain: 743 MB);
//   - it is removed when the conversion ends (it is unlinked at creation, so
//     even a crash leaves nothing behind).
//
// An in-memory buffer would do the same with RAM instead of disk, which a
// compute host running instances has less of; re-downloading ranges with HTTP
// Range requests would multiply Glance traffic and Glance's
// /v2/images/{id}/file does not promise range support for every store backend.
//
// # Checksums
//
// The digest (os_hash_algo/os_hash_value, else the md5 `checksum`, see
// FromGlance) is computed while the bytes are spooled. It is known only at the
// end, while Docker has been receiving the tar all along, so the last 64 KiB of
// the tar stream are withheld until the digest matched: on a mismatch the stream
// to Docker ends with an error before the end-of-archive marker and Docker
// discards the import. No image is ever tagged from unverified bytes.
//
// # Errors
//
// Every failure of Ensure is an *ImageError whose Kind is one of
// ErrChecksumMismatch, ErrBrokenImage, ErrDownload, ErrEngine or ErrInvalid;
// its Fault method gives the sentence for the instance fault.
//
// # Example
//
//	cli, _ := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
//	eng := store.NewDocker(cli)
//	if err := eng.Ping(ctx); err != nil { ... } // fails loudly below API 1.41
//	st, _ := store.New(eng, store.ImagesConverter(), store.Options{Prefix: "nca-glance", MaxBytes: 20 << 30})
//	sum, _ := store.FromGlance(img.OSHashAlgo, img.OSHashValue, img.Checksum)
//	tag, err := st.Ensure(ctx, img.ID, sum, func(ctx context.Context) (io.ReadCloser, int64, error) {
//		return glance.Download(ctx, img.ID) // body and img.Size
//	})
package store
