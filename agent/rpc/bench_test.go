package rpc_test

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc/rpctest"
)

func benchConns(b *testing.B, url string, dialer rpc.Dialer) (server, client *rpc.Conn) {
	b.Helper()
	mk := func(name string) *rpc.Conn {
		c, err := rpc.Dial(context.Background(), url, rpc.WithDialer(dialer), rpc.WithBinary(name),
			rpc.WithDefaultExchange("nca-test-bench"), rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	return mk("nca-test-bench-server"), mk("nca-test-bench-client")
}

// benchServeDispatch reports how many casts per second one Serve dispatches.
func benchServeDispatch(b *testing.B, url string, dialer rpc.Dialer) {
	server, client := benchConns(b, url, dialer)
	topic := "nca-test-bench-" + uuid.NewString()[:8]
	var n atomic.Int64
	done := make(chan struct{}, 1)
	target := int64(b.N)
	h := rpc.HandlerFunc(func(_ context.Context, r *rpc.Request) (any, error) {
		if r.Method == "ready" {
			return true, nil
		}
		if n.Add(1) == target {
			done <- struct{}{}
		}
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go server.Serve(ctx, rpc.Target{Topic: topic}, h)
	for {
		if _, err := client.Call(ctx, rpc.Target{Topic: topic}, rpc.Context{}, "ready", nil, time.Second); err == nil {
			break
		}
	}
	args := map[string]any{"instance": map[string]any{"uuid": uuid.NewString(), "vm_state": "active"}}
	rctx := rpc.Context(conductor.AdminContext(time.Now(), conductor.NewRequestID()))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := client.Cast(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rctx, "work", args); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("dispatched %d of %d", n.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// benchCallLatency reports the p50 and p99 round trip of a call.
func benchCallLatency(b *testing.B, url string, dialer rpc.Dialer) {
	server, client := benchConns(b, url, dialer)
	topic := "nca-test-bench-" + uuid.NewString()[:8]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go server.Serve(ctx, rpc.Target{Topic: topic, Server: "h"}, rpc.HandlerFunc(func(context.Context, *rpc.Request) (any, error) {
		return map[string]any{"service": "compute"}, nil
	}))
	tgt := rpc.Target{Topic: topic, Server: "h", Namespace: "baseapi", Version: "1.0"}
	for {
		if _, err := client.Call(ctx, tgt, rpc.Context{}, "ping", nil, time.Second); err == nil {
			break
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := client.Call(ctx, tgt, rpc.Context{}, "ping", map[string]any{"arg": "x"}, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkServeDispatchFake(b *testing.B) {
	benchServeDispatch(b, "rabbit://fake/", rpctest.NewBroker().Dial)
}

func BenchmarkCallLatencyFake(b *testing.B) {
	benchCallLatency(b, "rabbit://fake/", rpctest.NewBroker().Dial)
}
