package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Transport is one connection to an AMQP 0-9-1 broker: the narrow surface this package needs.
// The real implementation is amqp091-go (DialAMQP); rpctest.Broker provides an in-memory one.
// Both pass rpctest's conformance suite.
type Transport interface {
	// Channel opens a new channel. Publishing channels are in publisher-confirm mode.
	Channel(ctx context.Context) (Channel, error)
	// Done is closed when the connection is gone (closed by either side); Err then tells why.
	Done() <-chan struct{}
	Err() error
	Close() error
}

// Channel is one AMQP channel. A channel exception (e.g. 406 on declare) closes it, as on RabbitMQ.
type Channel interface {
	DeclareExchange(ctx context.Context, ex ExchangeSpec) error
	DeclareQueue(ctx context.Context, q QueueSpec) error
	BindQueue(ctx context.Context, queue, exchange, key string) error
	DeleteQueue(ctx context.Context, queue string) error
	// Publish sends m and waits for the broker's confirm. A mandatory message that no queue
	// takes returns ErrUnroutable.
	Publish(ctx context.Context, exchange, key string, mandatory bool, m Publishing) error
	// Consume starts a consumer (manual ack). The channel of deliveries is closed when the
	// consumer ends: channel closed, connection lost, or cancelled by the broker (queue deleted).
	Consume(ctx context.Context, queue, tag string) (<-chan Delivery, error)
	Done() <-chan struct{}
	Err() error
	Close() error
}

// ExchangeSpec is exchange.declare's arguments.
type ExchangeSpec struct {
	Name, Kind                   string // Kind: "topic", "fanout", "direct"
	Durable, AutoDelete, Passive bool
}

// QueueSpec is queue.declare's arguments.
type QueueSpec struct {
	Name                                    string
	Durable, AutoDelete, Exclusive, Passive bool
	Args                                    amqp.Table
}

// Publishing is a message to publish with the basic properties oslo sets.
type Publishing struct {
	Body            []byte
	ContentType     string
	ContentEncoding string
	DeliveryMode    uint8
	Priority        uint8
	Expiration      string
	Headers         amqp.Table
}

// Delivery is a message received by a consumer.
type Delivery struct {
	Publishing
	Exchange, RoutingKey string
	Redelivered          bool
	// Acker acknowledges the message; set by the transport.
	Acker func() error
}

// Ack acknowledges the delivery.
func (d *Delivery) Ack() error {
	if d.Acker == nil {
		return nil
	}
	return d.Acker()
}

// Dialer opens transports; props are the client properties (connection_name, ...).
type Dialer func(ctx context.Context, url string, props amqp.Table) (Transport, error)

// DialAMQP is the Dialer for a real broker (amqp091-go). url may be rabbit:// or amqp://; several
// comma-separated hosts (oslo's failover syntax) are tried in order.
func DialAMQP(ctx context.Context, url string, props amqp.Table) (Transport, error) {
	urls, err := amqpURLs(url)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		cfg := amqp.Config{
			Properties: props,
			// py-amqp negotiates heartbeat_timeout_threshold=60 s.
			Heartbeat: 60 * time.Second,
			Locale:    "en_US",
			Dial: func(network, addr string) (net.Conn, error) {
				d := net.Dialer{Timeout: 10 * time.Second}
				conn, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				// Bound the AMQP handshake; amqp091 clears the deadline once open.
				if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
					conn.Close()
					return nil, err
				}
				return conn, nil
			},
		}
		c, err := amqp.DialConfig(u, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("dial %s: %w", redactURL(u), err))
			continue
		}
		return newAMQPTransport(c), nil
	}
	return nil, errors.Join(errs...)
}

// amqpURLs turns oslo's transport URL into amqp:// URLs, one per host
// ("rabbit://u:p@h1:5672,u:p@h2:5672/vhost").
func amqpURLs(url string) ([]string, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("transport url %q: no scheme", redactURL(url))
	}
	switch scheme {
	case "rabbit", "amqp", "kombu":
		scheme = "amqp"
	case "amqps":
	default:
		return nil, fmt.Errorf("transport url %q: unsupported scheme %q", redactURL(url), scheme)
	}
	hosts, path := rest, "/"
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		hosts, path = rest[:i], rest[i:]
	}
	if path == "/" {
		// amqp091 reads an empty vhost path as "/"; keep it explicit.
		path = "/"
	}
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			continue
		}
		out = append(out, scheme+"://"+h+path)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("transport url %q: no host", redactURL(url))
	}
	return out, nil
}

// redactURL hides passwords in URLs put into errors and logs.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	parts := strings.Split(rest, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if user, _, ok := strings.Cut(p[:at], ":"); ok {
				parts[i] = user + ":***" + p[at:]
			}
		}
	}
	return scheme + "://" + strings.Join(parts, ",")
}

// amqpTransport adapts *amqp.Connection.
type amqpTransport struct {
	conn *amqp.Connection
	done chan struct{}
	mu   sync.Mutex
	err  error
}

var _ Transport = (*amqpTransport)(nil)

func newAMQPTransport(c *amqp.Connection) *amqpTransport {
	t := &amqpTransport{conn: c, done: make(chan struct{})}
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		e, ok := <-closed
		t.mu.Lock()
		if ok && e != nil {
			t.err = &BrokerError{Code: e.Code, Reason: e.Reason}
		} else {
			t.err = ErrClosed
		}
		t.mu.Unlock()
		close(t.done)
	}()
	return t
}

func (t *amqpTransport) Channel(ctx context.Context) (Channel, error) {
	ch, err := t.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", convertAMQPError(err))
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("enable publisher confirms: %w", convertAMQPError(err))
	}
	c := &amqpChannel{ch: ch, done: make(chan struct{}), returns: ch.NotifyReturn(make(chan amqp.Return, 16))}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		e, ok := <-closed
		c.mu.Lock()
		if ok && e != nil {
			c.err = &BrokerError{Code: e.Code, Reason: e.Reason}
		} else {
			c.err = ErrChannelClosed
		}
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (t *amqpTransport) Done() <-chan struct{} { return t.done }

func (t *amqpTransport) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *amqpTransport) Close() error {
	if err := t.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close amqp connection: %w", err)
	}
	return nil
}

// amqpChannel adapts *amqp.Channel.
type amqpChannel struct {
	ch      *amqp.Channel
	done    chan struct{}
	returns chan amqp.Return
	pubMu   sync.Mutex // one confirmed publish at a time, so a basic.return is ours
	mu      sync.Mutex
	err     error
}

var _ Channel = (*amqpChannel)(nil)

func convertAMQPError(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		if ae == amqp.ErrClosed {
			return fmt.Errorf("%w: %s", ErrChannelClosed, ae.Reason)
		}
		return &BrokerError{Code: ae.Code, Reason: ae.Reason}
	}
	return err
}

func (c *amqpChannel) DeclareExchange(_ context.Context, ex ExchangeSpec) error {
	var err error
	if ex.Passive {
		err = c.ch.ExchangeDeclarePassive(ex.Name, ex.Kind, ex.Durable, ex.AutoDelete, false, false, nil)
	} else {
		err = c.ch.ExchangeDeclare(ex.Name, ex.Kind, ex.Durable, ex.AutoDelete, false, false, nil)
	}
	if err != nil {
		return fmt.Errorf("declare exchange %q: %w", ex.Name, convertAMQPError(err))
	}
	return nil
}

func (c *amqpChannel) DeclareQueue(_ context.Context, q QueueSpec) error {
	var err error
	if q.Passive {
		_, err = c.ch.QueueDeclarePassive(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args)
	} else {
		_, err = c.ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, q.Args)
	}
	if err != nil {
		return fmt.Errorf("declare queue %q: %w", q.Name, convertAMQPError(err))
	}
	return nil
}

func (c *amqpChannel) BindQueue(_ context.Context, queue, exchange, key string) error {
	if err := c.ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %q to %q with key %q: %w", queue, exchange, key, convertAMQPError(err))
	}
	return nil
}

func (c *amqpChannel) DeleteQueue(_ context.Context, queue string) error {
	if _, err := c.ch.QueueDelete(queue, false, false, false); err != nil {
		return fmt.Errorf("delete queue %q: %w", queue, convertAMQPError(err))
	}
	return nil
}

func (c *amqpChannel) Publish(ctx context.Context, exchange, key string, mandatory bool, m Publishing) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	// Drop returns left over from a publish whose confirm wait was abandoned.
	for len(c.returns) > 0 {
		<-c.returns
	}
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, amqp.Publishing{
		Headers: m.Headers, ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		DeliveryMode: m.DeliveryMode, Priority: m.Priority, Expiration: m.Expiration, Body: m.Body,
	})
	if err != nil {
		return fmt.Errorf("publish to %q key %q: %w", exchange, key, convertAMQPError(err))
	}
	select {
	case <-dc.Done():
	case <-c.done:
		return fmt.Errorf("publish to %q key %q: %w", exchange, key, c.Err())
	case <-ctx.Done():
		return fmt.Errorf("publish to %q key %q: waiting for confirm: %w", exchange, key, ctx.Err())
	}
	if !dc.Acked() {
		// A channel exception (e.g. 404 for a missing exchange) nacks pending confirms; report
		// the exception rather than the nack.
		select {
		case <-c.done:
			return fmt.Errorf("publish to %q key %q: %w", exchange, key, c.Err())
		case <-time.After(200 * time.Millisecond):
		}
		return fmt.Errorf("publish to %q key %q: broker nacked the message", exchange, key)
	}
	// RabbitMQ sends basic.return before basic.ack, and amqp091 hands both over in order from
	// its reader goroutine, so a return for this message is already buffered here.
	select {
	case r := <-c.returns:
		return fmt.Errorf("publish to %q key %q: %w: %d %s", exchange, key, ErrUnroutable, r.ReplyCode, r.ReplyText)
	default:
	}
	return nil
}

func (c *amqpChannel) Consume(_ context.Context, queue, tag string) (<-chan Delivery, error) {
	in, err := c.ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %q: %w", queue, convertAMQPError(err))
	}
	out := make(chan Delivery)
	go func() {
		defer close(out)
		for d := range in {
			d := d
			out <- Delivery{
				Publishing: Publishing{Body: d.Body, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
					DeliveryMode: d.DeliveryMode, Priority: d.Priority, Expiration: d.Expiration, Headers: d.Headers},
				Exchange: d.Exchange, RoutingKey: d.RoutingKey, Redelivered: d.Redelivered,
				Acker: func() error { return convertAMQPError(d.Ack(false)) },
			}
		}
	}()
	return out, nil
}

func (c *amqpChannel) Done() <-chan struct{} { return c.done }

func (c *amqpChannel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *amqpChannel) Close() error {
	if err := c.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close channel: %w", err)
	}
	return nil
}
