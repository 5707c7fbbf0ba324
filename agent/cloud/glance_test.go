package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/agent/cloud"
)

// TestGlanceDownloadStreams proves DownloadImage does not buffer: the
// server sends the first chunk and then waits until the client has read it
// before sending the rest. A buffering client would deadlock (and time out).
func TestGlanceDownloadStreams(t *testing.T) {
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	firstRead := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/images/img1/file":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-MD5", "abc")
			_, _ = w.Write(chunk)
			w.(http.Flusher).Flush()
			select {
			case <-firstRead:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write(chunk)
		case r.URL.Path == "/v2/images/empty/file":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	k := newKeystone(t, "glance")
	g, err := cloud.NewGlance(session(t, k, "glance", "image"), nil, srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := g.DownloadImage(ctx, "img1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Body.Close()
	buf := make([]byte, len(chunk))
	if _, err := io.ReadFull(d.Body, buf); err != nil {
		t.Fatal(err)
	}
	close(firstRead)
	rest, err := io.ReadAll(d.Body)
	if err != nil || len(rest) != len(chunk) || d.ContentMD5 != "abc" {
		t.Fatalf("rest %d bytes, md5 %q, %v", len(rest), d.ContentMD5, err)
	}
	if _, err := g.DownloadImage(ctx, "empty"); !errors.Is(err, cloud.ErrNoImageData) {
		t.Errorf("no data: %v", err)
	}
	if _, err := g.DownloadImage(ctx, "missing"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestGlanceCreateUploadShow(t *testing.T) {
	var uploaded []byte
	var created, patched string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v2/images":
			b, _ := io.ReadAll(r.Body)
			created = string(b)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id": "snap1", "name": "vm1-snap", "status": "queued", "disk_format": "qcow2",
				"container_format": "bare", "size": null, "visibility": "private", "instance_uuid": "i1", "min_disk": 1}`))
		case r.Method == http.MethodPut && r.URL.Path == "/v2/images/snap1/file":
			if r.Header.Get("Content-Type") != "application/octet-stream" {
				http.Error(w, "bad content type", http.StatusUnsupportedMediaType)
				return
			}
			uploaded, _ = io.ReadAll(r.Body)
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPatch && r.URL.Path == "/v2/images/snap1":
			b, _ := io.ReadAll(r.Body)
			patched = r.Header.Get("Content-Type") + " " + string(b)
			_, _ = w.Write([]byte(`{"id": "snap1", "name": "vm1-snap", "status": "active", "os_hash_algo": "sha512", "image_type": "snapshot"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	k := newKeystone(t, "glance")
	g, err := cloud.NewGlance(session(t, k, "glance", "image"), nil, srv.URL+"/v2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.Endpoint() != srv.URL+"/v2/" {
		t.Errorf("endpoint %s", g.Endpoint())
	}
	ctx := context.Background()
	im, err := g.CreateImage(ctx, cloud.ImageCreate{Name: "vm1-snap", DiskFormat: "qcow2", ContainerFormat: "bare",
		Properties: map[string]string{"instance_uuid": "i1"}})
	if err != nil || im.ID != "snap1" || im.Status != "queued" || im.Properties["instance_uuid"] != "i1" || im.MinDisk != 1 {
		t.Fatalf("CreateImage: %+v %v", im, err)
	}
	if !strings.Contains(created, `"instance_uuid":"i1"`) || !strings.Contains(created, `"disk_format":"qcow2"`) {
		t.Errorf("create body %s", created)
	}
	data := bytes.Repeat([]byte("layer"), 100000)
	if err := g.UploadImage(ctx, "snap1", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(uploaded) != sha256.Sum256(data) {
		t.Errorf("uploaded %d bytes, want %d", len(uploaded), len(data))
	}
	im, err = g.SetImageProperties(ctx, "snap1", map[string]string{"image_type": "snapshot"})
	if err != nil || im.Status != "active" || im.Properties["image_type"] != "snapshot" {
		t.Fatalf("SetImageProperties: %+v %v", im, err)
	}
	if patched != `application/openstack-images-v2.1-json-patch [{"op":"add","path":"/image_type","value":"snapshot"}]` {
		t.Errorf("patch %s", patched)
	}
}
