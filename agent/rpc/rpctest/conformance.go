package rpctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Harness is the broker under test.
type Harness struct {
	// Name labels the subtests' logs ("fake", "rabbitmq").
	Name string
	URL  string
	// Dialer opens transports to the broker.
	Dialer rpc.Dialer
	// CloseConnections force-closes the broker connections whose connection_name starts with
	// prefix, as an operator or a broker restart would.
	CloseConnections func(t testing.TB, prefix string)
}

// FakeHarness returns a harness over a fresh in-memory Broker.
func FakeHarness() Harness {
	b := NewBroker()
	return Harness{Name: "fake", URL: "rabbit://guest:guest@fake:5672/", Dialer: b.Dial,
		CloseConnections: func(t testing.TB, prefix string) {
			if n := b.CloseConnections(prefix); n == 0 {
				t.Fatalf("no fake broker connection named %s*", prefix)
			}
		}}
}

// RunConformance runs the suite both the fake broker and RabbitMQ must pass: AMQP semantics
// oslo relies on (declare equivalence with RabbitMQ's exact 406 texts, 404s, routing, mandatory
// returns, redelivery, expiry) and the RPC layer on top (call, cast, fanout, replies, dispatch
// failures, call-monitor heartbeats, dedupe, bad input, reconnection, graceful shutdown).
func RunConformance(t *testing.T, h Harness) {
	t.Run("DeclareEquivalence", func(t *testing.T) { testDeclareEquivalence(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("Routing", func(t *testing.T) { testRouting(t, h) })
	t.Run("Redelivery", func(t *testing.T) { testRedelivery(t, h) })
	t.Run("QueueDeleteCancelsConsumer", func(t *testing.T) { testDeleteCancels(t, h) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, h) })
	t.Run("CallCast", func(t *testing.T) { testCallCast(t, h) })
	t.Run("Fanout", func(t *testing.T) { testFanout(t, h) })
	t.Run("DispatchFailures", func(t *testing.T) { testDispatchFailures(t, h) })
	t.Run("WireFormat", func(t *testing.T) { testWireFormat(t, h) })
	t.Run("Topology", func(t *testing.T) { testTopology(t, h) })
	t.Run("Heartbeat", func(t *testing.T) { testHeartbeat(t, h) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, h) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, h) })
	t.Run("Reconnect", func(t *testing.T) { testReconnect(t, h) })
	t.Run("GracefulShutdown", func(t *testing.T) { testGracefulShutdown(t, h) })
}

func uniq(prefix string) string { return "nca-test-" + prefix + "-" + uuid.NewString()[:8] }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func rawTransport(t *testing.T, h Harness) rpc.Transport {
	t.Helper()
	tr, err := h.Dialer(testCtx(t, 10*time.Second), h.URL, amqp.Table{"connection_name": uniq("raw")})
	if err != nil {
		t.Fatalf("dial %s broker: %v", h.Name, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func rawChannel(t *testing.T, tr rpc.Transport) rpc.Channel {
	t.Helper()
	ch, err := tr.Channel(context.Background())
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

func cleanupQueues(t *testing.T, tr rpc.Transport, names ...string) {
	t.Cleanup(func() {
		ch, err := tr.Channel(context.Background())
		if err != nil {
			return
		}
		defer ch.Close()
		for _, n := range names {
			_ = ch.DeleteQueue(context.Background(), n)
		}
	})
}

func wantBrokerError(t *testing.T, what string, err error, code int, reason string) {
	t.Helper()
	var be *rpc.BrokerError
	if !errors.As(err, &be) {
		t.Fatalf("%s: got %v, want broker error %d %q", what, err, code, reason)
	}
	if be.Code != code || be.Reason != reason {
		t.Fatalf("%s:\n got  %d %q\n want %d %q", what, be.Code, be.Reason, code, reason)
	}
}

func recv(t *testing.T, ds <-chan rpc.Delivery, within time.Duration) rpc.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatalf("consumer closed while waiting for a delivery")
		}
		return d
	case <-time.After(within):
		t.Fatalf("no delivery within %s", within)
	}
	return rpc.Delivery{}
}

func noRecv(t *testing.T, ds <-chan rpc.Delivery, within time.Duration) {
	t.Helper()
	select {
	case d, ok := <-ds:
		if ok {
			t.Fatalf("unexpected delivery %q", d.Body)
		}
	case <-time.After(within):
	}
}

func testDeclareEquivalence(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	ex, q, q2 := uniq("ex"), uniq("q"), uniq("q2")
	cleanupQueues(t, tr, q, q2)
	ch := rawChannel(t, tr)
	if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: ex, Kind: "topic"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: ex, Kind: "topic"}); err != nil {
		t.Fatalf("same flags must be accepted: %v", err)
	}
	cases := []struct {
		spec   rpc.ExchangeSpec
		reason string
	}{
		{rpc.ExchangeSpec{Name: ex, Kind: "topic", Durable: true}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '%s' in vhost '/': received 'true' but current is 'false'", ex)},
		{rpc.ExchangeSpec{Name: ex, Kind: "topic", AutoDelete: true}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange '%s' in vhost '/': received 'true' but current is 'false'", ex)},
		{rpc.ExchangeSpec{Name: ex, Kind: "fanout"}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': received 'fanout' but current is 'topic'", ex)},
	}
	for _, c := range cases {
		ch := rawChannel(t, tr)
		err := ch.DeclareExchange(ctx, c.spec)
		wantBrokerError(t, "redeclare exchange", err, 406, c.reason)
		if !errors.Is(err, rpc.ErrPreconditionFailed) {
			t.Fatalf("406 must match ErrPreconditionFailed: %v", err)
		}
		select {
		case <-ch.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("channel not closed after 406")
		}
		if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: ex, Kind: "topic"}); !errors.Is(err, rpc.ErrChannelClosed) {
			t.Fatalf("operation on a channel closed by 406: got %v, want ErrChannelClosed", err)
		}
	}
	ttl := amqp.Table{"x-expires": int32(1800000)}
	ch = rawChannel(t, tr)
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q, Args: ttl}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q, Args: amqp.Table{"x-expires": int64(1800000)}}); err != nil {
		t.Fatalf("x-expires as long with the same value must be equivalent: %v", err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q2}); err != nil {
		t.Fatal(err)
	}
	qcases := []struct {
		spec   rpc.QueueSpec
		reason string
	}{
		{rpc.QueueSpec{Name: q}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%s' in vhost '/': received none but current is the value '1800000' of type 'signedint'", q)},
		{rpc.QueueSpec{Name: q, Args: amqp.Table{"x-expires": int32(1000)}}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%s' in vhost '/': received '1000' but current is '1800000'", q)},
		{rpc.QueueSpec{Name: q, Durable: true, Args: ttl}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': received 'true' but current is 'false'", q)},
		{rpc.QueueSpec{Name: q, AutoDelete: true, Args: ttl}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost '/': received 'true' but current is 'false'", q)},
		{rpc.QueueSpec{Name: q2, Args: ttl}, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%s' in vhost '/': received the value '1800000' of type 'signedint' but current is none", q2)},
	}
	for _, c := range qcases {
		ch := rawChannel(t, tr)
		wantBrokerError(t, "redeclare queue", ch.DeclareQueue(ctx, c.spec), 406, c.reason)
	}
	ch = rawChannel(t, tr)
	wantBrokerError(t, "declare default exchange", ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: "", Kind: "direct"}), 403, "ACCESS_REFUSED - operation not permitted on the default exchange")
}

func testNotFound(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	missing := uniq("missing")
	ex, q := uniq("ex"), uniq("q")
	cleanupQueues(t, tr, q)
	ch := rawChannel(t, tr)
	if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: ex, Kind: "topic"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q, Passive: true, Durable: true}); err != nil {
		t.Fatalf("passive declare ignores flags: %v", err)
	}
	noQueue := fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '/'", missing)
	noEx := fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '/'", missing)
	checks := []struct {
		name   string
		op     func(rpc.Channel) error
		reason string
	}{
		{"passive queue", func(c rpc.Channel) error { return c.DeclareQueue(ctx, rpc.QueueSpec{Name: missing, Passive: true}) }, noQueue},
		{"passive exchange", func(c rpc.Channel) error {
			return c.DeclareExchange(ctx, rpc.ExchangeSpec{Name: missing, Kind: "topic", Passive: true})
		}, noEx},
		{"bind missing queue", func(c rpc.Channel) error { return c.BindQueue(ctx, missing, ex, "k") }, noQueue},
		{"bind missing exchange", func(c rpc.Channel) error { return c.BindQueue(ctx, q, missing, "k") }, noEx},
		{"consume missing queue", func(c rpc.Channel) error { _, err := c.Consume(ctx, missing, "1"); return err }, noQueue},
		{"publish to missing exchange", func(c rpc.Channel) error {
			return c.Publish(ctx, missing, "k", false, rpc.Publishing{Body: []byte("{}")})
		}, noEx},
	}
	for _, c := range checks {
		err := c.op(rawChannel(t, tr))
		wantBrokerError(t, c.name, err, 404, c.reason)
		if !errors.Is(err, rpc.ErrNotFound) {
			t.Fatalf("%s: 404 must match ErrNotFound", c.name)
		}
	}
	if err := ch.DeleteQueue(ctx, missing); err != nil {
		t.Fatalf("deleting a missing queue is not an error on RabbitMQ: %v", err)
	}
}

func testRouting(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	ex, fx := uniq("topic"), uniq("fan")
	qStar, qHash, qExact, qF1, qF2 := uniq("star"), uniq("hash"), uniq("exact"), uniq("f1"), uniq("f2")
	cleanupQueues(t, tr, qStar, qHash, qExact, qF1, qF2)
	ch := rawChannel(t, tr)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: ex, Kind: "topic", AutoDelete: true}))
	must(ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: fx, Kind: "fanout", AutoDelete: true}))
	for _, q := range []string{qStar, qHash, qExact, qF1, qF2} {
		must(ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q}))
	}
	must(ch.BindQueue(ctx, qStar, ex, "compute.*"))
	must(ch.BindQueue(ctx, qHash, ex, "compute.#"))
	must(ch.BindQueue(ctx, qExact, ex, "compute"))
	must(ch.BindQueue(ctx, qF1, fx, "compute"))
	must(ch.BindQueue(ctx, qF2, fx, "compute"))
	consume := func(q string) <-chan rpc.Delivery {
		ds, err := rawChannel(t, tr).Consume(ctx, q, "1")
		must(err)
		return ds
	}
	dStar, dHash, dExact, dF1, dF2 := consume(qStar), consume(qHash), consume(qExact), consume(qF1), consume(qF2)
	pub := func(exName, key string, mandatory bool, body string) error {
		return ch.Publish(ctx, exName, key, mandatory, rpc.Publishing{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2})
	}
	must(pub(ex, "compute", false, "1"))
	must(pub(ex, "compute.host1", false, "2"))
	must(pub(ex, "compute.host1.x", false, "3"))
	for want, ds := range map[string]<-chan rpc.Delivery{"1": dExact} {
		if d := recv(t, ds, 5*time.Second); string(d.Body) != want {
			t.Fatalf("exact: got %q want %q", d.Body, want)
		}
	}
	for i, want := range []string{"1", "2", "3"} {
		d := recv(t, dHash, 5*time.Second)
		if string(d.Body) != want {
			t.Fatalf("compute.# message %d: got %q want %q", i, d.Body, want)
		}
		if d.Exchange != ex || d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != 2 {
			t.Fatalf("delivery lost properties: %+v", d)
		}
		must(d.Ack())
	}
	if d := recv(t, dStar, 5*time.Second); string(d.Body) != "2" {
		t.Fatalf("compute.*: got %q", d.Body)
	}
	noRecv(t, dStar, 200*time.Millisecond)
	noRecv(t, dExact, 50*time.Millisecond)

	must(pub(fx, "", false, "fan"))
	for _, ds := range []<-chan rpc.Delivery{dF1, dF2} {
		if d := recv(t, ds, 5*time.Second); string(d.Body) != "fan" {
			t.Fatalf("fanout: got %q", d.Body)
		}
	}
	// Default exchange: routing key = queue name.
	must(pub("", qExact, true, "direct"))
	if d := recv(t, dExact, 5*time.Second); string(d.Body) != "direct" || d.RoutingKey != qExact {
		t.Fatalf("default exchange: got %q key %q", d.Body, d.RoutingKey)
	}
	if err := pub("", uniq("nobody"), true, "x"); !errors.Is(err, rpc.ErrUnroutable) {
		t.Fatalf("mandatory publish without a queue: got %v, want ErrUnroutable", err)
	}
	must(pub("", uniq("nobody"), false, "x"))
	must(pub(ex, "nothing.bound", false, "x"))
	// The channel survives a return.
	must(pub("", qExact, true, "after-return"))
	if d := recv(t, dExact, 5*time.Second); string(d.Body) != "after-return" {
		t.Fatalf("got %q", d.Body)
	}
}

func testRedelivery(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	q := uniq("redeliver")
	cleanupQueues(t, tr, q)
	ch := rawChannel(t, tr)
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b"} {
		if err := ch.Publish(ctx, "", q, true, rpc.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	c1 := rawChannel(t, tr)
	ds, err := c1.Consume(ctx, q, "1")
	if err != nil {
		t.Fatal(err)
	}
	a := recv(t, ds, 5*time.Second)
	if string(a.Body) != "a" || a.Redelivered {
		t.Fatalf("first delivery: %q redelivered=%v", a.Body, a.Redelivered)
	}
	if err := a.Ack(); err != nil {
		t.Fatal(err)
	}
	b := recv(t, ds, 5*time.Second)
	if string(b.Body) != "b" {
		t.Fatalf("second delivery: %q", b.Body)
	}
	// b is not acked: closing the channel must put it back, marked redelivered; a must not come back.
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	ds2, err := rawChannel(t, tr).Consume(ctx, q, "1")
	if err != nil {
		t.Fatal(err)
	}
	r := recv(t, ds2, 5*time.Second)
	if string(r.Body) != "b" || !r.Redelivered {
		t.Fatalf("after channel close: got %q redelivered=%v, want b redelivered", r.Body, r.Redelivered)
	}
	if err := r.Ack(); err != nil {
		t.Fatal(err)
	}
	noRecv(t, ds2, 300*time.Millisecond)
}

func testDeleteCancels(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	q := uniq("cancel")
	ch := rawChannel(t, tr)
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q}); err != nil {
		t.Fatal(err)
	}
	ds, err := rawChannel(t, tr).Consume(ctx, q, "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.DeleteQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ds:
		if ok {
			t.Fatal("unexpected delivery")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consumer of a deleted queue was not cancelled")
	}
}

func testExpiry(t *testing.T, h Harness) {
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	q, q2, fx := uniq("expires"), uniq("ttl"), uniq("fan")
	cleanupQueues(t, tr, q, q2)
	ch := rawChannel(t, tr)
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q, Args: amqp.Table{"x-expires": int32(300)}}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: q2}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: fx, Kind: "fanout", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if err := ch.BindQueue(ctx, q2, fx, ""); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctx, "", q2, true, rpc.Publishing{Body: []byte("old"), Expiration: "100"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	wantBrokerError(t, "queue unused past x-expires", rawChannel(t, tr).DeclareQueue(ctx, rpc.QueueSpec{Name: q, Passive: true}),
		404, fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '/'", q))
	if err := ch.Publish(ctx, "", q2, true, rpc.Publishing{Body: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	ds, err := rawChannel(t, tr).Consume(ctx, q2, "1")
	if err != nil {
		t.Fatal(err)
	}
	if d := recv(t, ds, 5*time.Second); string(d.Body) != "new" {
		t.Fatalf("expired message delivered: got %q", d.Body)
	}
	// The auto-delete fanout exchange goes away with its last binding.
	if err := ch.DeleteQueue(ctx, q2); err != nil {
		t.Fatal(err)
	}
	wantBrokerError(t, "auto-delete exchange after its last queue", rawChannel(t, tr).DeclareExchange(ctx, rpc.ExchangeSpec{Name: fx, Kind: "fanout", Passive: true}),
		404, fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '/'", fx))
}

// --- RPC layer ---

func dialConn(t *testing.T, h Harness, binary string, opts ...rpc.Option) *rpc.Conn {
	t.Helper()
	base := []rpc.Option{rpc.WithDialer(h.Dialer), rpc.WithBinary(binary), rpc.WithReconnectBackoff(100*time.Millisecond, time.Second),
		rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), rpc.WithDefaultExchange("nca-test")}
	c, err := rpc.Dial(testCtx(t, 10*time.Second), h.URL, append(base, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs c.Serve in the background and waits until it consumes (a ping answers).
func serve(t *testing.T, c *rpc.Conn, target rpc.Target, h rpc.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(ctx, target, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-errc })
		return err
	}
	t.Cleanup(func() { stop() })
	waitServing(t, c, target, errc)
	return stop
}

// waitServing calls the conformance readiness method until the server answers.
func waitServing(t *testing.T, c *rpc.Conn, target rpc.Target, errc chan error) {
	t.Helper()
	tgt := rpc.Target{Exchange: target.Exchange, Topic: target.Topic, Server: target.Server, Namespace: "nca-test-ready", Version: "1.0"}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			t.Fatalf("Serve returned early: %v", err)
		default:
		}
		_, err := c.Call(context.Background(), tgt, rpc.Context{}, "ready", nil, 500*time.Millisecond)
		if err == nil {
			return
		}
		var f *rpc.Failure
		if errors.As(err, &f) {
			return // answered, even if with a failure
		}
	}
	t.Fatal("server never answered")
}

// testEndpoints is what the RPC tests serve.
type testEndpoints struct {
	casts   atomic.Int64
	castArg chan string
	block   chan struct{}
	started chan struct{}
}

func newTestEndpoints() *testEndpoints {
	return &testEndpoints{castArg: make(chan string, 100), block: make(chan struct{}), started: make(chan struct{}, 100)}
}

func (e *testEndpoints) dispatcher(server string) *rpc.Dispatcher {
	str := func(req *rpc.Request, k string) string {
		var s string
		_ = json.Unmarshal(req.Args[k], &s)
		return s
	}
	return rpc.NewDispatcher(
		rpc.Endpoint{Namespace: "nca-test-ready", Methods: map[string]rpc.HandlerFunc{
			"ready": func(context.Context, *rpc.Request) (any, error) { return true, nil },
		}},
		rpc.Endpoint{Namespace: "baseapi", Version: "1.1", Methods: map[string]rpc.HandlerFunc{
			"ping": func(_ context.Context, req *rpc.Request) (any, error) {
				return map[string]any{"service": "compute", "arg": str(req, "arg")}, nil
			},
		}},
		rpc.Endpoint{Version: "6.1", Methods: map[string]rpc.HandlerFunc{
			"echo": func(_ context.Context, req *rpc.Request) (any, error) {
				return map[string]any{"server": server, "args": req.Args, "request_id": req.Context.RequestID(),
					"ctx_extra": req.Context["nca_extra"], "call": req.Call, "version": req.Version}, nil
			},
			"record": func(_ context.Context, req *rpc.Request) (any, error) {
				e.casts.Add(1)
				e.castArg <- server + ":" + str(req, "v")
				return nil, nil
			},
			"not_found": func(_ context.Context, req *rpc.Request) (any, error) {
				return nil, fmt.Errorf("wrapped: %w", &rpc.Failure{Module: rpc.ModuleNova, Class: "InstanceNotFound",
					Message: "Instance x could not be found.", Kwargs: map[string]any{"instance_id": "x", "code": 404.0}})
			},
			"plain_error": func(context.Context, *rpc.Request) (any, error) { return nil, errors.New("disk on fire") },
			"panics":      func(context.Context, *rpc.Request) (any, error) { panic("boom") },
			"slow": func(ctx context.Context, req *rpc.Request) (any, error) {
				e.started <- struct{}{}
				var ms float64
				_ = json.Unmarshal(req.Args["ms"], &ms)
				select {
				case <-time.After(time.Duration(ms) * time.Millisecond):
				case <-e.block:
				}
				return "done", nil
			},
		}},
	)
}

func testCallCast(t *testing.T, h Harness) {
	topic := uniq("topic")
	server := dialConn(t, h, "nca-test-server")
	client := dialConn(t, h, "nca-test-client")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic, Server: "host1"}, ep.dispatcher("host1"))
	ctx := testCtx(t, 30*time.Second)
	rctx := rpc.Context(conductor.AdminContext(time.Now(), conductor.NewRequestID()))
	rctx["nca_extra"] = map[string]any{"k": []any{"v"}}
	for _, srv := range []string{"", "host1"} {
		res, err := client.Call(ctx, rpc.Target{Topic: topic, Server: srv, Version: "6.0"}, rctx, "echo", map[string]any{"n": 1, "s": "é"}, 10*time.Second)
		if err != nil {
			t.Fatalf("call (server %q): %v", srv, err)
		}
		var got struct {
			Server    string         `json:"server"`
			Args      map[string]any `json:"args"`
			RequestID string         `json:"request_id"`
			Extra     map[string]any `json:"ctx_extra"`
			Call      bool           `json:"call"`
			Version   string         `json:"version"`
		}
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatal(err)
		}
		if got.Server != "host1" || got.Args["n"] != 1.0 || got.Args["s"] != "é" || got.RequestID != rctx.RequestID() ||
			!got.Call || got.Version != "6.0" || fmt.Sprint(got.Extra) != "map[k:[v]]" {
			t.Fatalf("echo: %+v", got)
		}
	}
	res, err := client.Call(ctx, rpc.Target{Topic: topic, Namespace: "baseapi", Version: "1.0"}, rctx, "ping", map[string]any{"arg": "1.21 GigaWatts"}, 10*time.Second)
	if err != nil || string(res) != `{"arg":"1.21 GigaWatts","service":"compute"}` {
		t.Fatalf("ping: %s %v", res, err)
	}
	if err := client.Cast(ctx, rpc.Target{Topic: topic, Server: "host1", Version: "6.0"}, rctx, "record", map[string]any{"v": "c1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ep.castArg:
		if got != "host1:c1" {
			t.Fatalf("cast: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cast not dispatched")
	}
	// A call nobody serves times out with ErrTimeout.
	_, err = client.Call(ctx, rpc.Target{Topic: uniq("nobody")}, rctx, "x", nil, 300*time.Millisecond)
	if !errors.Is(err, rpc.ErrTimeout) {
		t.Fatalf("call to nobody: %v, want ErrTimeout", err)
	}
	if _, err := client.Call(ctx, rpc.Target{Topic: topic, Fanout: true}, rctx, "x", nil, time.Second); err == nil {
		t.Fatal("a fanout call must be refused")
	}
}

func testFanout(t *testing.T, h Harness) {
	topic := uniq("fan")
	ep := newTestEndpoints()
	s1, s2 := dialConn(t, h, "nca-test-s1"), dialConn(t, h, "nca-test-s2")
	serve(t, s1, rpc.Target{Topic: topic, Server: "a"}, ep.dispatcher("a"))
	serve(t, s2, rpc.Target{Topic: topic, Server: "b"}, ep.dispatcher("b"))
	client := dialConn(t, h, "nca-test-client")
	if err := client.Cast(testCtx(t, 10*time.Second), rpc.Target{Topic: topic, Fanout: true, Version: "6.0"}, rpc.Context{}, "record", map[string]any{"v": "all"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-ep.castArg:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("fanout reached only %v", got)
		}
	}
	if !got["a:all"] || !got["b:all"] {
		t.Fatalf("fanout: %v", got)
	}
}

func wantFailure(t *testing.T, err error, module, class, message string) *rpc.Failure {
	t.Helper()
	var f *rpc.Failure
	if !errors.As(err, &f) {
		t.Fatalf("got %v, want failure %s.%s", err, module, class)
	}
	if f.Module != module || f.Class != class || f.Message != message {
		t.Fatalf("failure:\n got  %s / %s / %q\n want %s / %s / %q", f.Module, f.Class, f.Message, module, class, message)
	}
	return f
}

func testDispatchFailures(t *testing.T, h Harness) {
	topic := uniq("disp")
	server, client := dialConn(t, h, "nca-test-server"), dialConn(t, h, "nca-test-client")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	ctx := testCtx(t, 60*time.Second)
	call := func(ns, version, method string) error {
		_, err := client.Call(ctx, rpc.Target{Topic: topic, Namespace: ns, Version: version}, rpc.Context{}, method, nil, 10*time.Second)
		return err
	}
	wantFailure(t, call("", "6.1", "no_such"), "oslo_messaging.rpc.dispatcher", "NoSuchMethod", "Endpoint does not support RPC method no_such")
	wantFailure(t, call("", "6.1", "_private"), "oslo_messaging.rpc.dispatcher", "NoSuchMethod", "Endpoint does not support RPC method _private")
	wantFailure(t, call("", "6.2", "echo"), "oslo_messaging.rpc.dispatcher", "UnsupportedVersion", "Endpoint does not support RPC version 6.2. Attempted method: echo")
	wantFailure(t, call("", "7.0", "echo"), "oslo_messaging.rpc.dispatcher", "UnsupportedVersion", "Endpoint does not support RPC version 7.0. Attempted method: echo")
	wantFailure(t, call("baseapi", "2.0", "ping"), "oslo_messaging.rpc.dispatcher", "UnsupportedVersion", "Endpoint does not support RPC version 2.0. Attempted method: ping")
	wantFailure(t, call("nope", "1.0", "ping"), "oslo_messaging.rpc.dispatcher", "UnsupportedVersion", "Endpoint does not support RPC version 1.0. Attempted method: ping")
	wantFailure(t, call("", "x.1", "echo"), "builtins", "ValueError", "invalid literal for int() with base 10: 'x'")
	f := wantFailure(t, call("", "6.0", "not_found"), "nova.exception", "InstanceNotFound", "Instance x could not be found.")
	if f.Kwargs["instance_id"] != "x" || f.Kwargs["code"] != 404.0 || len(f.Args) != 1 || f.Args[0] != "Instance x could not be found." {
		t.Fatalf("failure args/kwargs: %+v", f)
	}
	wantFailure(t, call("", "6.0", "plain_error"), "builtins", "RuntimeError", "disk on fire")
	wantFailure(t, call("", "6.0", "panics"), "builtins", "RuntimeError", "handler for panics panicked: boom")
	// The server survives all of this.
	if err := call("", "6.0", "echo"); err != nil {
		t.Fatal(err)
	}
}

// rawCall publishes body to the topic's server queue and returns the raw replies until ending.
func rawReplies(t *testing.T, h Harness, exchange, key string, build func(replyQ string) []byte, want int) []rpc.Delivery {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	tr := rawTransport(t, h)
	replyQ := "reply_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	cleanupQueues(t, tr, replyQ)
	ch := rawChannel(t, tr)
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: replyQ, Args: amqp.Table{"x-expires": int32(1800000)}}); err != nil {
		t.Fatal(err)
	}
	ds, err := rawChannel(t, tr).Consume(ctx, replyQ, "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctx, exchange, key, false, rpc.Publishing{Body: build(replyQ), ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2}); err != nil {
		t.Fatal(err)
	}
	var out []rpc.Delivery
	for len(out) < want {
		d := recv(t, ds, 15*time.Second)
		_ = d.Ack()
		out = append(out, d)
	}
	return out
}

func pyRequest(method, version, msgID, replyQ, uniqueID string, timeout any, args string) []byte {
	inner := fmt.Sprintf(`{"method": %q, "args": %s, "version": %q, "_msg_id": %q, "_reply_q": %q, "_timeout": %s, "_unique_id": %q, "_context_request_id": "req-1", "_context_is_admin": true}`,
		method, args, version, msgID, replyQ, mustJSON(timeout), uniqueID)
	return []byte(fmt.Sprintf(`{"oslo.version": "2.0", "oslo.message": %s}`, mustJSON(inner)))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hexID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

func testWireFormat(t *testing.T, h Harness) {
	topic := uniq("wire")
	server := dialConn(t, h, "nca-test-server")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic, Server: "h"}, ep.dispatcher("h"))
	msgID := hexID()
	ds := rawReplies(t, h, "nca-test", topic+".h", func(replyQ string) []byte {
		return pyRequest("ping", "1.1", msgID, replyQ, hexID(), nil, `{"arg": "x"}`)
	}, 1)
	// ping is in namespace baseapi: this request has none, so NoSuchMethod? No: no endpoint with
	// the null namespace serves 1.1 -> UnsupportedVersion. Check the exact reply bytes' shape.
	d := ds[0]
	if d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != 2 || d.Expiration != "" || d.Exchange != "" {
		t.Fatalf("reply properties: %+v", d.Publishing)
	}
	body := string(d.Body)
	if !strings.HasPrefix(body, `{"oslo.version": "2.0", "oslo.message": "{\"result\": null, \"failure\": \"{\\\"class\\\": \\\"UnsupportedVersion\\\", \\\"module\\\": \\\"oslo_messaging.rpc.dispatcher\\\", \\\"message\\\": \\\"Endpoint does not support RPC version 1.1. Attempted method: ping\\\", \\\"tb\\\": [`) {
		t.Fatalf("reply bytes: %s", body)
	}
	var env map[string]string
	if err := json.Unmarshal(d.Body, &env); err != nil {
		t.Fatal(err)
	}
	inner := env["oslo.message"]
	if !strings.Contains(inner, fmt.Sprintf(`, "ending": true, "_msg_id": "%s", "_unique_id": "`, msgID)) {
		t.Fatalf("reply message: %s", inner)
	}
	// And a successful reply.
	msgID = hexID()
	ds = rawReplies(t, h, "nca-test", topic, func(replyQ string) []byte {
		inner := fmt.Sprintf(`{"method": "ping", "args": {"arg": "1.21 GigaWatts"}, "namespace": "baseapi", "version": "1.0", "_msg_id": %q, "_reply_q": %q, "_timeout": null, "_unique_id": %q}`, msgID, replyQ, hexID())
		return []byte(fmt.Sprintf(`{"oslo.version": "2.0", "oslo.message": %s}`, mustJSON(inner)))
	}, 1)
	want := fmt.Sprintf(`{"oslo.version": "2.0", "oslo.message": "{\"result\": {\"arg\": \"1.21 GigaWatts\", \"service\": \"compute\"}, \"failure\": null, \"ending\": true, \"_msg_id\": \"%s\", \"_unique_id\": \"`, msgID)
	if got := string(ds[0].Body); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `\"}"}`) || len(got) != len(want)+32+5 {
		t.Fatalf("reply bytes:\n got  %s\n want %s<32 hex>\\\"}\"}", got, want)
	}

	// What Conn.Call puts on the wire: capture it with a raw consumer bound like a server.
	tr := rawTransport(t, h)
	capQ := uniq("capture")
	cleanupQueues(t, tr, capQ)
	ch := rawChannel(t, tr)
	ctx := testCtx(t, 30*time.Second)
	if err := ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: "nca-test", Kind: "topic"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareQueue(ctx, rpc.QueueSpec{Name: capQ}); err != nil {
		t.Fatal(err)
	}
	if err := ch.BindQueue(ctx, capQ, "nca-test", capQ); err != nil {
		t.Fatal(err)
	}
	cds, err := ch.Consume(ctx, capQ, "1")
	if err != nil {
		t.Fatal(err)
	}
	client := dialConn(t, h, "nca-test-client")
	rctx := rpc.Context{"request_id": "req-abc", "timestamp": "2026-11-23T13:58:49.058871", "is_admin": true, "zz": 1}
	go client.CallWithOptions(ctx, rpc.Target{Topic: capQ, Namespace: "baseapi", Version: "1.0"}, rctx, "ping", map[string]any{"arg": "x"}, rpc.CallOptions{Timeout: 5 * time.Second, MonitorTimeout: 2 * time.Second})
	req := recv(t, cds, 10*time.Second)
	if req.ContentType != "application/json" || req.ContentEncoding != "utf-8" || req.DeliveryMode != 2 || req.Expiration != "5000" || req.Exchange != "nca-test" || req.RoutingKey != capQ {
		t.Fatalf("request properties: %+v exchange %q key %q", req.Publishing, req.Exchange, req.RoutingKey)
	}
	if err := json.Unmarshal(req.Body, &env); err != nil {
		t.Fatal(err)
	}
	inner = env["oslo.message"]
	wantPrefix := `{"method": "ping", "args": {"arg": "x"}, "namespace": "baseapi", "version": "1.0", "_msg_id": "`
	wantSuffix := `", "_timeout": 2, "_unique_id": "`
	ctxSuffix := `", "_context_is_admin": true, "_context_request_id": "req-abc", "_context_timestamp": "2026-11-23T13:58:49.058871", "_context_zz": 1}`
	if !strings.HasPrefix(inner, wantPrefix) || !strings.Contains(inner, `", "_reply_q": "`+client.ReplyQueue()+wantSuffix) || !strings.HasSuffix(inner, ctxSuffix) {
		t.Fatalf("request message: %s", inner)
	}
	if !strings.HasPrefix(string(req.Body), `{"oslo.version": "2.0", "oslo.message": "{\"method\": \"ping\", `) {
		t.Fatalf("request envelope: %s", req.Body)
	}
}

func testTopology(t *testing.T, h Harness) {
	topic := uniq("topo")
	server := dialConn(t, h, "nca-test-server")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Exchange: topic + "-ex", Topic: topic, Server: "h"}, ep.dispatcher("h"))
	client := dialConn(t, h, "nca-test-client")
	ctx := testCtx(t, 30*time.Second)
	if _, err := client.Call(ctx, rpc.Target{Exchange: topic + "-ex", Topic: topic, Version: "6.0"}, rpc.Context{}, "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	tr := rawTransport(t, h)
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s with oslo's flags: %v", what, err)
		}
	}
	ch := rawChannel(t, tr)
	// Re-declaring with exactly oslo's flags succeeds only if ours were identical.
	ok("topic exchange", ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: topic + "-ex", Kind: "topic"}))
	ok("fanout exchange", ch.DeclareExchange(ctx, rpc.ExchangeSpec{Name: topic + "_fanout", Kind: "fanout", AutoDelete: true}))
	ok("topic queue", ch.DeclareQueue(ctx, rpc.QueueSpec{Name: topic}))
	ok("server queue", ch.DeclareQueue(ctx, rpc.QueueSpec{Name: topic + ".h"}))
	ok("reply queue", ch.DeclareQueue(ctx, rpc.QueueSpec{Name: client.ReplyQueue(), Args: amqp.Table{"x-expires": int32(1800000)}}))
	wantBrokerError(t, "topic queue must have no x-expires", rawChannel(t, tr).DeclareQueue(ctx, rpc.QueueSpec{Name: topic, Args: amqp.Table{"x-expires": int32(1800000)}}),
		406, fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%s' in vhost '/': received the value '1800000' of type 'signedint' but current is none", topic))
	// Routing: the server queue is bound with its own name, the topic queue with the topic.
	if _, err := client.Call(ctx, rpc.Target{Exchange: topic + "-ex", Topic: topic, Server: "h", Version: "6.0"}, rpc.Context{}, "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A server whose flags differ from the existing queues fails at once with the 406.
	durable := dialConn(t, h, "nca-test-durable", rpc.WithDurableQueues(true))
	err := durable.Serve(ctx, rpc.Target{Exchange: topic + "-ex", Topic: topic}, ep.dispatcher("x"))
	if !errors.Is(err, rpc.ErrPreconditionFailed) {
		t.Fatalf("serve with durable=true over non-durable queues: %v, want ErrPreconditionFailed", err)
	}
}

func testHeartbeat(t *testing.T, h Harness) {
	topic := uniq("hb")
	server := dialConn(t, h, "nca-test-server")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	// Raw: _timeout 2 -> heartbeat every second while the method runs 2.5 s.
	msgID := hexID()
	ds := rawReplies(t, h, "nca-test", topic, func(replyQ string) []byte {
		return pyRequest("slow", "6.0", msgID, replyQ, hexID(), 2, `{"ms": 2500}`)
	}, 3)
	for i, d := range ds[:2] {
		r := decodeRaw(t, d.Body)
		if string(r["result"]) != "null" || string(r["failure"]) != "null" || string(r["ending"]) != "false" || string(r["_msg_id"]) != `"`+msgID+`"` || len(r["_unique_id"]) != 34 {
			t.Fatalf("heartbeat %d: %s", i, d.Body)
		}
	}
	if r := decodeRaw(t, ds[2].Body); string(r["result"]) != `"done"` || string(r["ending"]) != "true" {
		t.Fatalf("final reply: %s", ds[2].Body)
	}
	// Conn.Call with a call-monitor timeout shorter than the method survives thanks to heartbeats.
	client := dialConn(t, h, "nca-test-client")
	res, err := client.CallWithOptions(testCtx(t, 30*time.Second), rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "slow",
		map[string]any{"ms": 3500}, rpc.CallOptions{Timeout: 20 * time.Second, MonitorTimeout: 2 * time.Second})
	if err != nil || string(res) != `"done"` {
		t.Fatalf("monitored call: %s %v", res, err)
	}
}

func decodeRaw(t *testing.T, body []byte) map[string]json.RawMessage {
	t.Helper()
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("envelope %s: %v", body, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(env["oslo.message"]), &m); err != nil {
		t.Fatalf("message %s: %v", env["oslo.message"], err)
	}
	return m
}

func testDedupe(t *testing.T, h Harness) {
	topic := uniq("dup")
	server := dialConn(t, h, "nca-test-server")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	tr := rawTransport(t, h)
	ch := rawChannel(t, tr)
	ctx := testCtx(t, 30*time.Second)
	inner := fmt.Sprintf(`{"method": "record", "args": {"v": "once"}, "version": "6.0", "_unique_id": %q}`, hexID())
	body := []byte(fmt.Sprintf(`{"oslo.version": "2.0", "oslo.message": %s}`, mustJSON(inner)))
	for i := 0; i < 3; i++ {
		if err := ch.Publish(ctx, "nca-test", topic, false, rpc.Publishing{Body: body, ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2}); err != nil {
			t.Fatal(err)
		}
	}
	client := dialConn(t, h, "nca-test-client")
	// A call after the casts on the same queue is received after them: once it is answered the
	// duplicates have been judged.
	if _, err := client.Call(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ep.castArg:
	case <-time.After(10 * time.Second):
		t.Fatal("cast never dispatched")
	}
	if n := ep.casts.Load(); n != 1 {
		t.Fatalf("duplicate casts dispatched %d times, want 1", n)
	}
}

func testBadInput(t *testing.T, h Harness) {
	topic := uniq("bad")
	server := dialConn(t, h, "nca-test-server", rpc.WithMaxMessageBytes(1<<20))
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	// Wrong types with a known reply queue: a failure comes back.
	ds := rawReplies(t, h, "nca-test", topic, func(replyQ string) []byte {
		return pyRequest("echo", "6.0", hexID(), replyQ, hexID(), nil, `[1, 2]`)
	}, 1)
	r := decodeRaw(t, ds[0].Body)
	if !strings.Contains(string(r["failure"]), `TypeError`) || string(r["ending"]) != "true" {
		t.Fatalf("bad args reply: %s", ds[0].Body)
	}
	// Oversized call: failure reply.
	ds = rawReplies(t, h, "nca-test", topic, func(replyQ string) []byte {
		return pyRequest("echo", "6.0", hexID(), replyQ, hexID(), nil, `{"blob": "`+strings.Repeat("a", 2<<20)+`"}`)
	}, 1)
	if r := decodeRaw(t, ds[0].Body); !strings.Contains(string(r["failure"]), `exceeds the limit`) {
		t.Fatalf("oversized reply: %.300s", ds[0].Body)
	}
	// Garbage without a reply queue is dropped; the server keeps working.
	tr := rawTransport(t, h)
	ch := rawChannel(t, tr)
	ctx := testCtx(t, 30*time.Second)
	for _, garbage := range []string{`not json`, `{"oslo.version": "2.0", "oslo.message": "{bad"}`, `{"oslo.version": "3.0", "oslo.message": "{}"}`,
		`[]`, `null`, `{"oslo.version": "2.0", "oslo.message": 5}`, `{"method": 5}`, "\xff\xfe", ``} {
		if err := ch.Publish(ctx, "nca-test", topic, false, rpc.Publishing{Body: []byte(garbage)}); err != nil {
			t.Fatal(err)
		}
	}
	// An un-enveloped (1.0) message is still understood.
	if err := ch.Publish(ctx, "nca-test", topic, false, rpc.Publishing{Body: []byte(`{"method": "record", "args": {"v": "v1"}, "version": "6.0"}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ep.castArg:
		if got != "s:v1" {
			t.Fatalf("1.0 message: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("1.0 message not dispatched")
	}
	client := dialConn(t, h, "nca-test-client")
	if _, err := client.Call(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "echo", nil, 10*time.Second); err != nil {
		t.Fatalf("server broken by bad input: %v", err)
	}
}

func testReconnect(t *testing.T, h Harness) {
	if h.CloseConnections == nil {
		t.Fatal("harness cannot close connections")
	}
	topic := uniq("reconn")
	server := dialConn(t, h, "nca-test-rserver")
	client := dialConn(t, h, "nca-test-rclient")
	ep := newTestEndpoints()
	serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	ctx := testCtx(t, 60*time.Second)
	tgt := rpc.Target{Topic: topic, Version: "6.0"}
	if _, err := client.Call(ctx, tgt, rpc.Context{}, "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A call in flight when the client's connection dies fails cleanly.
	errc := make(chan error, 1)
	go func() {
		_, err := client.Call(ctx, tgt, rpc.Context{}, "slow", map[string]any{"ms": 60000}, 30*time.Second)
		errc <- err
	}()
	select {
	case <-ep.started:
	case <-time.After(10 * time.Second):
		t.Fatal("slow call not started")
	}
	h.CloseConnections(t, client.ConnectionName())
	select {
	case err := <-errc:
		if !errors.Is(err, rpc.ErrConnectionLost) {
			t.Fatalf("in-flight call: %v, want ErrConnectionLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight call did not fail after the connection was closed")
	}
	close(ep.block)
	// Both sides recover by themselves.
	h.CloseConnections(t, server.ConnectionName())
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.Call(ctx, tgt, rpc.Context{}, "echo", nil, 2*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after reconnect: %v", err)
		}
	}
	if err := client.Cast(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "record", map[string]any{"v": "after"}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ep.castArg:
		if got != "s:after" {
			t.Fatalf("cast after reconnect: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cast after reconnect not dispatched")
	}
}

func testGracefulShutdown(t *testing.T, h Harness) {
	topic := uniq("drain")
	server, client := dialConn(t, h, "nca-test-server"), dialConn(t, h, "nca-test-client")
	ep := newTestEndpoints()
	stop := serve(t, server, rpc.Target{Topic: topic}, ep.dispatcher("s"))
	ctx := testCtx(t, 30*time.Second)
	res := make(chan error, 1)
	go func() {
		_, err := client.Call(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "slow", map[string]any{"ms": 1000}, 20*time.Second)
		res <- err
	}()
	<-ep.started
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// Serve returned only after the handler finished and its reply was sent.
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("call in flight during shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reply of the drained call never arrived")
	}
	// No longer consuming: a new call times out.
	if _, err := client.Call(ctx, rpc.Target{Topic: topic, Version: "6.0"}, rpc.Context{}, "echo", nil, 500*time.Millisecond); !errors.Is(err, rpc.ErrTimeout) {
		t.Fatalf("call after shutdown: %v, want ErrTimeout", err)
	}
}
