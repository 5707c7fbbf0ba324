package store

import (
	"crypto/md5"  //nolint:gosec // Glance's legacy `checksum` is md5; we verify what Glance publishes.
	"crypto/sha1" //nolint:gosec // accepted os_hash_algo value
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Checksum is the digest Glance publishes for an image: os_hash_algo and
// os_hash_value (multihash, sha512 by default) or the legacy md5 `checksum`.
type Checksum struct {
	// Algo is a hashlib name as Glance stores it: md5, sha1, sha256 or sha512.
	Algo string
	// Value is the lower-case hex digest.
	Value string
}

// String returns "algo:value".
func (c Checksum) String() string { return c.Algo + ":" + c.Value }

// FromGlance picks the checksum to verify from an image's Glance attributes:
// os_hash_algo/os_hash_value when present (they are what Glance computes since
// Rocky), else the md5 `checksum`.
func FromGlance(osHashAlgo, osHashValue, md5sum string) (Checksum, error) {
	c := Checksum{Algo: "md5", Value: md5sum}
	if osHashAlgo != "" && osHashValue != "" {
		c = Checksum{Algo: osHashAlgo, Value: osHashValue}
	}
	c.Algo = strings.ToLower(c.Algo)
	c.Value = strings.ToLower(c.Value)
	if _, err := c.newHash(); err != nil {
		return Checksum{}, err
	}
	return c, nil
}

var digestLen = map[string]int{"md5": md5.Size, "sha1": sha1.Size, "sha256": sha256.Size, "sha512": sha512.Size}

// newHash validates c and returns a fresh hash for its algorithm.
func (c Checksum) newHash() (hash.Hash, error) {
	n, ok := digestLen[c.Algo]
	if !ok {
		return nil, fmt.Errorf("checksum algorithm %q: %w (want md5, sha1, sha256 or sha512)", c.Algo, ErrInvalid)
	}
	if len(c.Value) != 2*n {
		return nil, fmt.Errorf("%s checksum %q: %w: want %d hex digits", c.Algo, c.Value, ErrInvalid, 2*n)
	}
	if _, err := hex.DecodeString(c.Value); err != nil || strings.ToLower(c.Value) != c.Value {
		return nil, fmt.Errorf("%s checksum %q: %w: not lower-case hex", c.Algo, c.Value, ErrInvalid)
	}
	switch c.Algo {
	case "md5":
		return md5.New(), nil //nolint:gosec
	case "sha1":
		return sha1.New(), nil //nolint:gosec
	case "sha256":
		return sha256.New(), nil
	default:
		return sha512.New(), nil
	}
}
