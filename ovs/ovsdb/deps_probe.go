package ovsdb

import (
	_ "github.com/ovn-kubernetes/libovsdb/client"
	_ "github.com/ovn-kubernetes/libovsdb/database/inmemory"
	_ "github.com/ovn-kubernetes/libovsdb/server"
)
