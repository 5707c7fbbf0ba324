package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/store"
	"github.com/nova-container-agent/nova-container-agent/images/store/storetest"
)

func TestConvertFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	os.WriteFile(good, storetest.MiniRootfs(t, "file"), 0o644)
	bad := filepath.Join(dir, "bad.img")
	os.WriteFile(bad, []byte("BROKEN and more"), 0o644)

	eng := storetest.NewEngine()
	var out bytes.Buffer
	res, err := store.ConvertFile(ctx, eng, &tarConverter{}, good, "local/debian:12", store.FileOptions{Progress: &out})
	if err != nil {
		t.Fatalf("ConvertFile: %v", err)
	}
	info, err := eng.InspectImage(ctx, "local/debian:12")
	if err != nil || info.ID != res.ImageID || info.StopSignal != "SIGRTMIN+3" || info.Labels[store.LabelSource] != "file" {
		t.Errorf("image = %+v, %v", info, err)
	}
	if res.Read == 0 || res.Written == 0 {
		t.Errorf("result counters = %+v", res)
	}
	if !strings.HasPrefix(out.String(), "done: read ") || strings.Contains(out.String(), "\r") {
		t.Errorf("non-TTY progress = %q", out.String())
	}

	out.Reset()
	if _, err := store.ConvertFile(ctx, eng, &tarConverter{}, good, "local/debian:tty", store.FileOptions{Progress: &out, TTY: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "\r\033[Kdone: ") {
		t.Errorf("TTY progress = %q", out.String())
	}

	if _, err := store.ConvertFile(ctx, eng, &tarConverter{}, bad, "local/bad:1", store.FileOptions{}); !errors.Is(err, store.ErrBrokenImage) {
		t.Errorf("ConvertFile(bad) = %v, want ErrBrokenImage", err)
	}
	if _, err := eng.InspectImage(ctx, "local/bad:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a broken image left a tag behind: %v", err)
	}
	if _, err := store.ConvertFile(ctx, eng, &tarConverter{}, filepath.Join(dir, "missing"), "local/x:1", store.FileOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ConvertFile(missing) = %v", err)
	}
	if _, err := store.ConvertFile(ctx, eng, &tarConverter{}, dir, "local/x:1", store.FileOptions{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ConvertFile(dir) = %v, want ErrInvalid", err)
	}
	if _, err := store.ConvertFile(ctx, eng, &tarConverter{}, good, "Not A Tag", store.FileOptions{}); err == nil {
		t.Error("ConvertFile with an invalid tag succeeded")
	}
}
