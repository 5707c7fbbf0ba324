package storetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/images/store"
)

// Pinner makes an image in use (creates a container from it) and returns a
// function that undoes it.
type Pinner func(t *testing.T, eng store.Engine, ref string) (unpin func())

// RunEngineSuite checks the Engine contract the store relies on. newEngine
// returns the engine under test; pin creates a container from an image.
// Every image the suite creates is tagged under nca-test-store-suite/ and
// removed at the end.
func RunEngineSuite(t *testing.T, newEngine func(t *testing.T) store.Engine, pin Pinner) {
	ctx := context.Background()
	run := fmt.Sprintf("%x", rand.Text()[:8])
	ref := func(name string) string { return "nca-test-store-suite/" + name + ":" + run }
	cleanup := func(t *testing.T, eng store.Engine, r string) {
		t.Cleanup(func() {
			if info, err := eng.InspectImage(ctx, r); err == nil {
				_ = eng.RemoveImage(ctx, info.ID)
			}
		})
	}
	cfg := store.ImageConfig{
		Cmd: []string{"/sbin/init"}, Env: []string{"container=docker"}, StopSignal: "SIGRTMIN+3",
		Labels: map[string]string{store.LabelManaged: "true", store.LabelImageID: "suite-" + run},
	}

	t.Run("ImportRoundTrip", func(t *testing.T) {
		eng := newEngine(t)
		if err := eng.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		r := ref("roundtrip")
		cleanup(t, eng, r)
		id, err := eng.ImportImage(ctx, bytes.NewReader(MiniRootfs(t, "roundtrip")), r, cfg)
		if err != nil {
			t.Fatalf("ImportImage: %v", err)
		}
		info, err := eng.InspectImage(ctx, r)
		if err != nil {
			t.Fatalf("InspectImage(%s): %v", r, err)
		}
		if info.ID != id {
			t.Errorf("InspectImage id = %s, ImportImage returned %s", info.ID, id)
		}
		if !slices.Contains(info.Tags, r) {
			t.Errorf("tags = %v, want %s", info.Tags, r)
		}
		if !slices.Equal(info.Cmd, cfg.Cmd) || !slices.Contains(info.Env, "container=docker") || info.StopSignal != "SIGRTMIN+3" {
			t.Errorf("config = cmd %v env %v stop %q", info.Cmd, info.Env, info.StopSignal)
		}
		if info.Labels[store.LabelImageID] != "suite-"+run || info.Labels[store.LabelManaged] != "true" {
			t.Errorf("labels = %v", info.Labels)
		}
		if info.Size <= 0 || info.Created.IsZero() || time.Since(info.Created) > time.Hour {
			t.Errorf("size %d created %v", info.Size, info.Created)
		}
		byID, err := eng.InspectImage(ctx, id)
		if err != nil || byID.ID != id {
			t.Errorf("InspectImage by id = %v, %v", byID.ID, err)
		}
	})

	t.Run("FailedStreamCreatesNothing", func(t *testing.T) {
		eng := newEngine(t)
		full := MiniRootfs(t, "failed")
		for _, cut := range []int{0, 700, len(full) / 2, len(full) - 1024} {
			r := ref(fmt.Sprintf("failed%d", cut))
			cleanup(t, eng, r)
			pr, pw := io.Pipe()
			go func() {
				pw.Write(full[:cut])
				pw.CloseWithError(errors.New("checksum mismatch (injected)"))
			}()
			if _, err := eng.ImportImage(ctx, pr, r, cfg); err == nil {
				t.Errorf("cut at %d: ImportImage succeeded on a failed stream", cut)
			}
			if _, err := eng.InspectImage(ctx, r); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("cut at %d: InspectImage after failed import = %v, want ErrNotFound", cut, err)
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		eng := newEngine(t)
		if _, err := eng.InspectImage(ctx, ref("never-imported")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("InspectImage = %v, want ErrNotFound", err)
		}
		if err := eng.RemoveImage(ctx, "sha256:"+fmt.Sprintf("%064d", 0)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveImage = %v, want ErrNotFound", err)
		}
	})

	t.Run("ListByLabel", func(t *testing.T) {
		eng := newEngine(t)
		a, b := ref("list-a"), ref("list-b")
		cleanup(t, eng, a)
		cleanup(t, eng, b)
		ca := cfg
		ca.Labels = map[string]string{store.LabelManaged: "true", store.LabelImageID: "list-a-" + run}
		cb := cfg
		cb.Labels = map[string]string{store.LabelManaged: "true", store.LabelImageID: "list-b-" + run}
		idA, err := eng.ImportImage(ctx, bytes.NewReader(MiniRootfs(t, "a")), a, ca)
		if err != nil {
			t.Fatalf("import a: %v", err)
		}
		if _, err := eng.ImportImage(ctx, bytes.NewReader(MiniRootfs(t, "b")), b, cb); err != nil {
			t.Fatalf("import b: %v", err)
		}
		got, err := eng.ListImages(ctx, store.LabelImageID, "list-a-"+run)
		if err != nil {
			t.Fatalf("ListImages: %v", err)
		}
		if len(got) != 1 || got[0].ID != idA || !slices.Contains(got[0].Tags, a) || got[0].Size <= 0 {
			t.Errorf("ListImages(image-id=list-a) = %+v, want only %s", got, idA)
		}
	})

	t.Run("InUseIsProtected", func(t *testing.T) {
		eng := newEngine(t)
		r := ref("inuse")
		cleanup(t, eng, r)
		id, err := eng.ImportImage(ctx, bytes.NewReader(MiniRootfs(t, "inuse")), r, cfg)
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		unpin := pin(t, eng, r)
		used, err := eng.ImagesInUse(ctx)
		if err != nil {
			t.Fatalf("ImagesInUse: %v", err)
		}
		if !used[id] {
			t.Errorf("ImagesInUse = %v, want %s", used, id)
		}
		if err := eng.RemoveImage(ctx, id); !errors.Is(err, store.ErrInUse) {
			t.Errorf("RemoveImage of a used image = %v, want ErrInUse", err)
		}
		unpin()
		if err := eng.RemoveImage(ctx, id); err != nil {
			t.Fatalf("RemoveImage after unpin: %v", err)
		}
		if _, err := eng.InspectImage(ctx, r); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("InspectImage after remove = %v, want ErrNotFound", err)
		}
	})
}

// MiniRootfs returns a small but real-looking root filesystem tar: directories,
// a setuid binary, a symlink, a hardlink and an xattr. marker makes it unique.
func MiniRootfs(t testing.TB, marker string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body []byte) {
		h.ModTime, h.Format = mt, tar.FormatPAX
		h.Size = int64(len(body))
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink || h.Typeflag == tar.TypeDir {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(body); err != nil {
				t.Fatalf("tar body %s: %v", h.Name, err)
			}
		}
	}
	for _, d := range []string{"etc", "sbin", "usr", "usr/bin", "var", "tmp"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("ID=debian\nVERSION_ID=\"12\"\n"))
	add(&tar.Header{Name: "etc/marker", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(marker+"\n"))
	add(&tar.Header{Name: "usr/bin/sudo", Typeflag: tar.TypeReg, Mode: 0o4755}, bytes.Repeat([]byte{0x7f}, 4096))
	add(&tar.Header{Name: "usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		bytes.Repeat([]byte{1}, 100))
	add(&tar.Header{Name: "usr/bin/sudoedit", Typeflag: tar.TypeLink, Linkname: "usr/bin/sudo"}, nil)
	add(&tar.Header{Name: "sbin/init", Typeflag: tar.TypeSymlink, Linkname: "/lib/systemd/systemd"}, nil)
	add(&tar.Header{Name: "tmp/big", Typeflag: tar.TypeReg, Mode: 0o644}, bytes.Repeat([]byte(marker), 300_000/max(len(marker), 1)))
	if err := tw.Close(); err != nil {
		t.Fatalf("tar close: %v", err)
	}
	return buf.Bytes()
}
