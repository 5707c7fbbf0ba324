// Command agentrpc measures RPC figures against the real all-in-one for tests/bench/agent.sh.
//
//	agentrpc conductor [-n 200] [-host H] [-raw F]  round trips of Service.get_by_host_and_binary
//	                                          through nova-conductor (agent/conductor over agent/rpc)
//	agentrpc flood -host H [-n 5000] [-c 32]  baseapi ping calls to compute.H, c in flight
//	agentrpc casts -host H [-n 5000]          baseapi ping casts to compute.H, timed until the
//	                                          server's queue is drained
//
// Each prints one line of "key=value" figures so the shell script can lay them out beside their
// baselines. The same client serves both the agent and the Python nova-compute, so the server is
// the only thing that differs between the two figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/nova-container-agent/nova-container-agent/agent"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agentrpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: agentrpc conductor|flood|casts [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	url := fs.String("url", envOr("NCA_TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/"), "oslo transport URL")
	host := fs.String("host", "", "compute host (conductor: the service looked up; flood/casts: the server)")
	n := fs.Int("n", 0, "number of requests (default 200 for conductor, 5000 otherwise)")
	c := fs.Int("c", 32, "requests in flight (flood)")
	raw := fs.String("raw", "", "conductor: append each round trip's milliseconds to this file, one a line")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	conn, err := rpc.Dial(ctx, *url, rpc.WithBinary("nca-bench"), rpc.WithDefaultExchange("nova"),
		rpc.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *url, err)
	}
	defer conn.Close()
	switch args[0] {
	case "conductor":
		return conductorRoundTrips(ctx, conn, orDefault(*n, 200), *host, *raw, out)
	case "flood":
		if *host == "" {
			return errors.New("flood: -host is required")
		}
		return flood(ctx, conn, *host, orDefault(*n, 5000), *c, out)
	case "casts":
		if *host == "" {
			return errors.New("casts: -host is required")
		}
		return casts(ctx, conn, *url, *host, orDefault(*n, 5000), out)
	default:
		return fmt.Errorf("unknown mode %q", args[0])
	}
}

// conductorRoundTrips times n sequential Service.get_by_host_and_binary calls, the lookup a
// compute makes at every start, through the same client code the agent uses.
// With raw set, every latency is appended there too, so that runs interleaved with the Python
// baseline (the machine's load drifts) can be pooled into one distribution.
func conductorRoundTrips(ctx context.Context, conn *rpc.Conn, n int, host, raw string, out io.Writer) error {
	cl := conductor.New(agent.ConductorTransport{RPC: conn, Timeout: 30 * time.Second})
	call := func() (time.Duration, error) {
		rctx := conductor.AdminContext(time.Now(), conductor.NewRequestID())
		t0 := time.Now()
		_, err := cl.ServiceGetByHostAndBinary(ctx, rctx, host, "nova-compute")
		if errors.Is(err, conductor.ErrNotFound) {
			err = nil // an absent host is a valid answer: the round trip is what we time
		}
		return time.Since(t0), err
	}
	// Warm up: the reply queue, the conductor's DB connection pool.
	for i := 0; i < 10; i++ {
		if _, err := call(); err != nil {
			return fmt.Errorf("warm-up call: %w", err)
		}
	}
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		d, err := call()
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		lat = append(lat, d)
	}
	wall := time.Since(start)
	if raw != "" {
		if err := appendMillis(raw, lat); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "calls=%d p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f max_ms=%.2f calls_per_s=%.0f\n",
		n, ms(pct(lat, 50)), ms(pct(lat, 99)), ms(mean(lat)), ms(pct(lat, 100)), float64(n)/wall.Seconds())
	return nil
}

// flood keeps c ping calls in flight to compute.<host> until n have been answered. Every reply
// proves the server decoded, dispatched and answered one request.
func flood(ctx context.Context, conn *rpc.Conn, host string, n, c int, out io.Writer) error {
	t := rpc.Target{Exchange: "nova", Topic: "compute", Server: host, Namespace: "baseapi", Version: "1.0"}
	ping := func() (time.Duration, error) {
		t0 := time.Now()
		res, err := conn.Call(ctx, t, conductor.AdminContext(time.Now(), conductor.NewRequestID()), "ping", map[string]any{"arg": "nca-bench"}, 30*time.Second)
		if err == nil && len(res) == 0 {
			err = errors.New("empty ping reply")
		}
		return time.Since(t0), err
	}
	for i := 0; i < 20; i++ {
		if _, err := ping(); err != nil {
			return fmt.Errorf("warm-up ping of compute.%s: %w", host, err)
		}
	}
	var (
		next  atomic.Int64
		mu    sync.Mutex // guards lat and first
		lat   = make([]time.Duration, 0, n)
		errs  atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				d, err := ping()
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					continue
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if e := errs.Load(); e > 0 {
		return fmt.Errorf("%d of %d pings failed, first: %w", e, n, first)
	}
	fmt.Fprintf(out, "calls=%d in_flight=%d msgs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f wall_s=%.2f\n",
		n, c, float64(n)/wall.Seconds(), ms(pct(lat, 50)), ms(pct(lat, 99)), wall.Seconds())
	return nil
}

// casts publishes n ping casts to compute.<host> and waits until the server's queue holds no
// message: the rate at which the server takes casts off the queue. oslo acknowledges a message
// before dispatching it, so this counts consumption; the call flood is the dispatch figure.
func casts(ctx context.Context, conn *rpc.Conn, url, host string, n int, out io.Writer) error {
	t := rpc.Target{Exchange: "nova", Topic: "compute", Server: host, Namespace: "baseapi", Version: "1.0"}
	// oslo's rabbit:// scheme is AMQP 0-9-1; amqp091-go wants amqp://.
	amqpURL := url
	if rest, ok := strings.CutPrefix(url, "rabbit://"); ok {
		amqpURL = "amqp://" + rest
	}
	ac, err := amqp.Dial(amqpURL)
	if err != nil {
		return fmt.Errorf("dial %s for queue depth: %w", amqpURL, err)
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		return fmt.Errorf("channel for queue depth: %w", err)
	}
	queue := "compute." + host
	depth := func() (int, error) {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			return 0, fmt.Errorf("queue %s: %w", queue, err)
		}
		return q.Messages, nil
	}
	if _, err := depth(); err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := conn.Cast(ctx, t, conductor.AdminContext(time.Now(), conductor.NewRequestID()), "ping", map[string]any{"arg": "nca-bench"}); err != nil {
			return fmt.Errorf("cast %d: %w", i, err)
		}
	}
	published := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	// keptUp: the queue was already empty when the last cast was out, so the server consumed
	// as fast as this client published and the rate is only a lower bound of the server's.
	keptUp := true
	for {
		d, err := depth()
		if err != nil {
			return err
		}
		if d == 0 {
			break
		}
		keptUp = false
		if time.Now().After(deadline) {
			return fmt.Errorf("compute.%s still holds %d messages after 5 min", host, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wall := time.Since(start)
	fmt.Fprintf(out, "casts=%d publish_s=%.2f drained_s=%.2f msgs_per_s=%.0f kept_up=%t\n",
		n, published.Seconds(), wall.Seconds(), float64(n)/wall.Seconds(), keptUp)
	return nil
}

func appendMillis(path string, lat []time.Duration) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("raw latencies: %w", err)
	}
	for _, d := range lat {
		fmt.Fprintf(f, "%.3f\n", ms(d))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("raw latencies %s: %w", path, err)
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
