package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Image is a glance v2 image. Properties holds every attribute that is not
// one of the named fields (image properties are top-level keys in v2).
type Image struct {
	ID              string
	Name            string
	Status          string
	DiskFormat      string
	ContainerFormat string
	Size            int64
	VirtualSize     int64
	Checksum        string
	OSHashAlgo      string
	OSHashValue     string
	MinDisk         int
	MinRAM          int
	Visibility      string
	Owner           string
	Properties      map[string]any
}

// imageKnown are the keys decoded into Image's named fields.
var imageKnown = map[string]bool{"id": true, "name": true, "status": true, "disk_format": true,
	"container_format": true, "size": true, "virtual_size": true, "checksum": true, "os_hash_algo": true,
	"os_hash_value": true, "min_disk": true, "min_ram": true, "visibility": true, "owner": true}

// UnmarshalJSON splits glance's flat document into fields and Properties.
func (im *Image) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var named struct {
		ID              string  `json:"id"`
		Name            *string `json:"name"`
		Status          string  `json:"status"`
		DiskFormat      *string `json:"disk_format"`
		ContainerFormat *string `json:"container_format"`
		Size            *int64  `json:"size"`
		VirtualSize     *int64  `json:"virtual_size"`
		Checksum        *string `json:"checksum"`
		OSHashAlgo      *string `json:"os_hash_algo"`
		OSHashValue     *string `json:"os_hash_value"`
		MinDisk         int     `json:"min_disk"`
		MinRAM          int     `json:"min_ram"`
		Visibility      string  `json:"visibility"`
		Owner           *string `json:"owner"`
	}
	if err := json.Unmarshal(b, &named); err != nil {
		return err
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	i64 := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	*im = Image{ID: named.ID, Name: str(named.Name), Status: named.Status, DiskFormat: str(named.DiskFormat),
		ContainerFormat: str(named.ContainerFormat), Size: i64(named.Size), VirtualSize: i64(named.VirtualSize),
		Checksum: str(named.Checksum), OSHashAlgo: str(named.OSHashAlgo), OSHashValue: str(named.OSHashValue),
		MinDisk: named.MinDisk, MinRAM: named.MinRAM, Visibility: named.Visibility, Owner: str(named.Owner),
		Properties: map[string]any{}}
	for k, v := range raw {
		if imageKnown[k] {
			continue
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			return fmt.Errorf("image property %s: %w", k, err)
		}
		im.Properties[k] = val
	}
	return nil
}

// ImageCreate is the body of POST /v2/images (used for snapshots).
type ImageCreate struct {
	Name            string
	DiskFormat      string
	ContainerFormat string
	Visibility      string
	// Properties become top-level string attributes.
	Properties map[string]string
}

// Glance is a client of the image API v2.
type Glance struct {
	svc *service
}

// NewGlance returns a glance client. Calls use the user's token from the
// context (WithUserToken) and fall back to sess's credentials; sess also
// resolves the endpoint unless apiServer (the first [glance] api_servers
// entry) is given.
func NewGlance(sess, svcUser *Session, apiServer string, numRetries int) (*Glance, error) {
	svc, err := newService(sess, svcUser, apiServer, "v2/", numRetries)
	if err != nil {
		return nil, fmt.Errorf("glance client: %w", err)
	}
	return &Glance{svc: svc}, nil
}

// Endpoint returns the base URL in use (ending in v2/).
func (g *Glance) Endpoint() string { return g.svc.base }

// GetImage shows one image.
func (g *Glance) GetImage(ctx context.Context, id string) (*Image, error) {
	var out Image
	if _, err := g.svc.do(ctx, call{method: http.MethodGet, path: "images/" + url.PathEscape(id), out: &out, asUser: true}); err != nil {
		return nil, fmt.Errorf("get image %s: %w", id, err)
	}
	return &out, nil
}

// ImageData is a streamed image download. The caller must Close Body.
type ImageData struct {
	Body io.ReadCloser
	// Size is the Content-Length, or -1 when glance did not send one.
	Size int64
	// ContentMD5 is glance's Content-MD5 header (the legacy checksum), if any.
	ContentMD5 string
}

// DownloadImage starts streaming the image's data. Nothing is buffered:
// the body is the HTTP response body, so the caller controls memory and
// can hash while it writes. ErrNoImageData if the image has no data yet.
func (g *Glance) DownloadImage(ctx context.Context, id string) (*ImageData, error) {
	resp, err := g.svc.do(ctx, call{method: http.MethodGet, path: "images/" + url.PathEscape(id) + "/file",
		keepBody: true, ok: []int{http.StatusOK, http.StatusNoContent}, asUser: true})
	if err != nil {
		return nil, fmt.Errorf("download image %s: %w", id, err)
	}
	if resp.StatusCode == http.StatusNoContent {
		resp.Body.Close()
		return nil, fmt.Errorf("download image %s: %w", id, ErrNoImageData)
	}
	size := int64(-1)
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			size = n
		}
	}
	return &ImageData{Body: resp.Body, Size: size, ContentMD5: resp.Header.Get("Content-MD5")}, nil
}

// CreateImage registers a new image record (status "queued").
func (g *Glance) CreateImage(ctx context.Context, c ImageCreate) (*Image, error) {
	body := map[string]any{}
	for k, v := range c.Properties {
		body[k] = v
	}
	body["name"] = c.Name
	if c.DiskFormat != "" {
		body["disk_format"] = c.DiskFormat
	}
	if c.ContainerFormat != "" {
		body["container_format"] = c.ContainerFormat
	}
	if c.Visibility != "" {
		body["visibility"] = c.Visibility
	}
	var out Image
	_, err := g.svc.do(ctx, call{method: http.MethodPost, path: "images", body: body, out: &out,
		ok: []int{http.StatusCreated}, asUser: true})
	if err != nil {
		return nil, fmt.Errorf("create image %q: %w", c.Name, err)
	}
	return &out, nil
}

// UploadImage streams r as the image's data (PUT /file). The reader is
// consumed once; it is not buffered, so a failed upload is not retried.
func (g *Glance) UploadImage(ctx context.Context, id string, r io.Reader) error {
	_, err := g.svc.do(ctx, call{method: http.MethodPut, path: "images/" + url.PathEscape(id) + "/file",
		raw: r, rawType: "application/octet-stream", ok: []int{http.StatusNoContent}, asUser: true})
	if err != nil {
		return fmt.Errorf("upload image %s: %w", id, err)
	}
	return nil
}

// SetImageFormat sets the disk and container formats of a queued image: Glance refuses data
// for an image without them, and nova-api creates snapshot images without them (the
// compute, which knows what it uploads, sets them as the libvirt driver does).
func (g *Glance) SetImageFormat(ctx context.Context, id, diskFormat, containerFormat string) error {
	body, err := json.Marshal([]map[string]string{
		{"op": "replace", "path": "/disk_format", "value": diskFormat},
		{"op": "replace", "path": "/container_format", "value": containerFormat},
	})
	if err != nil {
		return fmt.Errorf("set formats of image %s: %w", id, err)
	}
	if _, err := g.svc.do(ctx, call{method: http.MethodPatch, path: "images/" + url.PathEscape(id),
		raw: bytesReader(body), rawType: "application/openstack-images-v2.1-json-patch",
		ok: []int{http.StatusOK}, asUser: true}); err != nil {
		return fmt.Errorf("set formats of image %s: %w", id, err)
	}
	return nil
}

// SetImageProperties adds or replaces top-level string attributes with a
// JSON patch (as nova does after uploading a snapshot).
func (g *Glance) SetImageProperties(ctx context.Context, id string, props map[string]string) (*Image, error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value string `json:"value"`
	}
	ops := make([]op, 0, len(props))
	for k, v := range props {
		ops = append(ops, op{Op: "add", Path: "/" + k, Value: v})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("set properties of image %s: %w", id, err)
	}
	resp, err := g.svc.do(ctx, call{method: http.MethodPatch, path: "images/" + url.PathEscape(id),
		raw: bytesReader(body), rawType: "application/openstack-images-v2.1-json-patch",
		keepBody: true, ok: []int{http.StatusOK}, asUser: true})
	if err != nil {
		return nil, fmt.Errorf("set properties of image %s: %w", id, err)
	}
	defer resp.Body.Close()
	var out Image
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("set properties of image %s: decode: %w", id, err)
	}
	return &out, nil
}
