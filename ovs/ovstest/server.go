package ovstest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/database/inmemory"
	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"github.com/ovn-kubernetes/libovsdb/server"

	"github.com/nova-container-agent/nova-container-agent/ovs/ovsdb"
)

// vswitchSchema is Debian's /usr/share/openvswitch/vswitch.ovsschema (OVS 3.1), copied so that
// tests never read outside the module.
//
//go:embed testdata/vswitch.ovsschema
var vswitchSchema []byte

// Server is a running in-memory OVSDB server holding one Open_vSwitch root row, as
// ovs-vswitchd's database has after `ovs-vsctl init`.
type Server struct {
	srv      *server.OvsdbServer
	endpoint string
}

// Endpoint is the server's address in libovsdb/ovs-vsctl syntax ("unix:/path").
func (s *Server) Endpoint() string { return s.endpoint }

// NewServer starts a server that is stopped when t ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("start in-memory ovsdb: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server; the caller must Close it.
func Start() (*Server, error) {
	var schema libovsdb.DatabaseSchema
	if err := json.Unmarshal(vswitchSchema, &schema); err != nil {
		return nil, fmt.Errorf("parse vswitch schema: %w", err)
	}
	clientModel, err := ovsdb.Model()
	if err != nil {
		return nil, err
	}
	dbModel, errs := model.NewDatabaseModel(schema, clientModel)
	if len(errs) > 0 {
		return nil, fmt.Errorf("model vs schema: %v", errs)
	}
	logger := logr.Discard()
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{ovsdb.DatabaseName: clientModel}, &logger)
	srv, err := server.NewOvsdbServer(db, &logger, dbModel)
	if err != nil {
		return nil, fmt.Errorf("new ovsdb server: %w", err)
	}
	// Unix socket paths are limited to 108 bytes, so avoid t.TempDir's long names.
	dir, err := os.MkdirTemp("", "ovsdb")
	if err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	sock := filepath.Join(dir, "db.sock")
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve("unix", sock) }()
	for deadline := time.Now().Add(5 * time.Second); !srv.Ready(); {
		select {
		case err := <-serveErr:
			return nil, fmt.Errorf("serve ovsdb on %s: %w", sock, err)
		default:
		}
		if time.Now().After(deadline) {
			srv.Close()
			return nil, fmt.Errorf("in-memory ovsdb not ready on %s", sock)
		}
		time.Sleep(2 * time.Millisecond)
	}
	s := &Server{srv: srv, endpoint: "unix:" + sock}
	if err := s.seed(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// seed inserts the root Open_vSwitch row that ovs-vsctl init would create.
func (s *Server) seed() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientModel, err := ovsdb.Model()
	if err != nil {
		return err
	}
	c, err := client.NewOVSDBClient(clientModel, client.WithEndpoint(s.endpoint))
	if err != nil {
		return fmt.Errorf("seed client: %w", err)
	}
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("seed connect: %w", err)
	}
	defer c.Disconnect()
	ver := "3.1.0"
	root := &ovsdb.OpenvSwitch{UUID: "root", OVSVersion: &ver,
		DatapathTypes: []string{"netdev", "system"},
		IfaceTypes:    []string{"internal", "patch", "system", "tap", "vxlan"}}
	ops, err := c.Create(root)
	if err != nil {
		return fmt.Errorf("seed root row: %w", err)
	}
	res, err := c.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("seed root row: %w", err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		return fmt.Errorf("seed root row: %w", err)
	}
	return nil
}

// Close stops the server and removes its socket.
func (s *Server) Close() {
	s.srv.Close()
	if sock, ok := strings.CutPrefix(s.endpoint, "unix:"); ok {
		_ = os.RemoveAll(filepath.Dir(sock))
	}
}
