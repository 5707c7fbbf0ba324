package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unixListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "nca-doctor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCheckDocker(t *testing.T) {
	for _, c := range []struct {
		version string
		wantErr string
	}{{"1.41", ""}, {"1.43", ""}, {"1.40", "older than the required 1.41"}, {"", "no usable API-Version"}} {
		l, path := unixListener(t)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_ping" {
				http.NotFound(w, r)
				return
			}
			if c.version != "" {
				w.Header().Set("Api-Version", c.version)
			}
			_, _ = w.Write([]byte("OK"))
		})}
		go func() { _ = srv.Serve(l) }()
		err := checkDocker(ctxT(t), "unix://"+path, "1.41")
		srv.Close()
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("API %q: err = %v, want %q", c.version, err, c.wantErr)
		}
	}
	if err := checkDocker(ctxT(t), "unix:///nonexistent/docker.sock", "1.41"); err == nil || !strings.Contains(err.Error(), "ping Docker") {
		t.Errorf("no daemon: %v", err)
	}
}

// fakeOVSDB answers one transact with the bridges it knows, after an echo
// keepalive to check the client skips it.
func fakeOVSDB(t *testing.T, bridges ...string) string {
	l, path := unixListener(t)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				var req struct {
					ID     any    `json:"id"`
					Method string `json:"method"`
					Params []json.RawMessage
				}
				if json.NewDecoder(conn).Decode(&req) != nil || req.Method != "transact" || len(req.Params) != 2 {
					return
				}
				var op struct {
					Table string  `json:"table"`
					Where [][]any `json:"where"`
				}
				_ = json.Unmarshal(req.Params[1], &op)
				rows := []any{}
				for _, b := range bridges {
					if op.Table == "Bridge" && len(op.Where) == 1 && op.Where[0][2] == b {
						rows = append(rows, map[string]any{"name": b})
					}
				}
				enc := json.NewEncoder(conn)
				_ = enc.Encode(map[string]any{"id": "echo", "method": "echo", "params": []any{}})
				_ = enc.Encode(map[string]any{"id": req.ID, "result": []any{map[string]any{"rows": rows}}, "error": nil})
			}(conn)
		}
	}()
	return "unix:" + path
}

func TestCheckOVS(t *testing.T) {
	ep := fakeOVSDB(t, "br-int")
	if err := checkOVS(ctxT(t), ep, "br-int"); err != nil {
		t.Errorf("existing bridge: %v", err)
	}
	if err := checkOVS(ctxT(t), ep, "br-nope"); err == nil || !strings.Contains(err.Error(), "br-nope does not exist") {
		t.Errorf("missing bridge: %v", err)
	}
	if err := checkOVS(ctxT(t), "unix:/nonexistent/db.sock", "br-int"); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("no server: %v", err)
	}
	if err := checkOVS(ctxT(t), "ssl:1.2.3.4:6640", "br-int"); err == nil {
		t.Error("ssl: accepted")
	}
}

func TestCheckLXCFS(t *testing.T) {
	dir := t.TempDir()
	if err := checkLXCFS(dir); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("empty dir: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proc", "meminfo"), []byte("MemTotal:  65536 kB\nMemFree: 1 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkLXCFS(dir); err != nil {
		t.Errorf("meminfo present: %v", err)
	}
}

func TestRunDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != version {
		t.Errorf("--version: %d %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"nosuch"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "doctor") {
		t.Errorf("unknown subcommand: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"image", "convert"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--tag are required") {
		t.Errorf("image convert without a file: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no --config-file") {
		t.Errorf("no config: %d %q", code, errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"doctor", "--config-file", "/nonexistent.conf"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "config") || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("doctor with a missing file: %d %q", code, out.String())
	}
}
