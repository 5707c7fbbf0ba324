package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults mirroring oslo.messaging's options.
const (
	DefaultExchange        = "openstack"        // control_exchange; nova sets "nova", neutron "neutron"
	DefaultCallTimeout     = 60 * time.Second   // rpc_response_timeout
	DefaultQueueTTL        = 1800 * time.Second // rabbit_transient_queues_ttl (reply and fanout queues)
	DefaultReplyRetry      = 60 * time.Second   // kombu_missing_consumer_retry_timeout
	DefaultDedupeSize      = 16                 // _MsgIdCache.DUP_MSG_CHECK_SIZE
	DefaultWorkers         = 64                 // executor_thread_pool_size
	DefaultMaxMessageBytes = 64 << 20
	publisherChannels      = 4
)

type options struct {
	logger          *slog.Logger
	binary          string
	dialer          Dialer
	exchange        string
	durable         bool
	autoDelete      bool
	queueTTL        time.Duration
	backoffMin      time.Duration
	backoffMax      time.Duration
	replyRetry      time.Duration
	dedupeSize      int
	workers         int
	maxMessageBytes int
	drainTimeout    time.Duration
}

// Option configures Dial.
type Option func(*options)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBinary sets the binary name in the connection_name client property
// "<binary>:<pid>:<uuid>" (default: the executable's base name), e.g. "nova-compute".
func WithBinary(name string) Option { return func(o *options) { o.binary = name } }

// WithDialer replaces the amqp091 transport, e.g. with rpctest.Broker.Dial.
func WithDialer(d Dialer) Option { return func(o *options) { o.dialer = d } }

// WithDefaultExchange sets control_exchange, used when a Target has no Exchange.
func WithDefaultExchange(name string) Option { return func(o *options) { o.exchange = name } }

// WithDurableQueues sets amqp_durable_queues: durability of topic exchanges and topic queues.
// It must equal what the Python services use, or declares fail with 406.
func WithDurableQueues(durable bool) Option { return func(o *options) { o.durable = durable } }

// WithAutoDelete sets amqp_auto_delete for topic exchanges and queues.
func WithAutoDelete(autoDelete bool) Option { return func(o *options) { o.autoDelete = autoDelete } }

// WithQueueTTL sets rabbit_transient_queues_ttl (x-expires of reply and fanout queues).
func WithQueueTTL(d time.Duration) Option { return func(o *options) { o.queueTTL = d } }

// WithReconnectBackoff sets the first and the longest wait between reconnection attempts.
func WithReconnectBackoff(first, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = first, max }
}

// WithReplyRetry sets how long a reply to a missing reply queue is retried
// (kombu_missing_consumer_retry_timeout).
func WithReplyRetry(d time.Duration) Option { return func(o *options) { o.replyRetry = d } }

// WithDedupeCacheSize sets how many recent _unique_id values a server remembers.
func WithDedupeCacheSize(n int) Option { return func(o *options) { o.dedupeSize = n } }

// WithWorkers bounds how many requests one Serve runs at once (executor_thread_pool_size).
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithMaxMessageBytes bounds the size of an incoming message body; bigger requests are answered
// with a failure (calls) or dropped with a log line (casts).
func WithMaxMessageBytes(n int) Option { return func(o *options) { o.maxMessageBytes = n } }

// WithDrainTimeout bounds how long Serve waits for handlers after its context ends before it
// cancels their contexts; 0 (default) waits for them however long they take.
func WithDrainTimeout(d time.Duration) Option { return func(o *options) { o.drainTimeout = d } }

// Conn is a connection to the broker speaking oslo.messaging's rabbit driver: it calls and casts
// (Call, Cast), serves targets (Serve) and reconnects by itself. Safe for concurrent use.
type Conn struct {
	url            string
	opts           options
	connectionName string
	log            *slog.Logger

	mu      sync.Mutex
	tr      Transport
	gen     uint64
	ready   chan struct{} // closed while tr is usable
	lost    chan struct{} // closed when the transport of generation gen is lost
	closed  bool
	closing chan struct{}
	runDone chan struct{}

	slots [publisherChannels]pubSlot
	rr    atomic.Uint64

	replyOnce  sync.Once
	replyQueue string
	replyReady chan struct{}
	replyErr   error
	waitersMu  sync.Mutex
	waiters    map[string]chan *reply

	bg sync.WaitGroup
}

type pubSlot struct {
	mu       sync.Mutex
	ch       Channel
	gen      uint64
	declared map[string]bool
}

// Dial connects to the broker at url (oslo transport_url syntax: rabbit://user:pass@host:5672/vhost,
// several hosts separated by commas) and keeps the connection up until Close: a lost connection
// is re-established with exponential backoff and every consumer re-declared.
func Dial(ctx context.Context, url string, opts ...Option) (*Conn, error) {
	o := options{
		logger: slog.Default(), binary: filepath.Base(os.Args[0]), dialer: DialAMQP,
		exchange: DefaultExchange, queueTTL: DefaultQueueTTL, backoffMin: time.Second,
		backoffMax: 30 * time.Second, replyRetry: DefaultReplyRetry, dedupeSize: DefaultDedupeSize,
		workers: DefaultWorkers, maxMessageBytes: DefaultMaxMessageBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Conn{
		url: url, opts: o, log: o.logger,
		connectionName: fmt.Sprintf("%s:%d:%s", o.binary, os.Getpid(), uuid.NewString()),
		ready:          make(chan struct{}), lost: make(chan struct{}),
		closing: make(chan struct{}), runDone: make(chan struct{}),
		replyQueue: "reply_" + newUniqueID(), replyReady: make(chan struct{}),
		waiters: map[string]chan *reply{},
	}
	tr, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.setTransport(tr)
	go c.supervise()
	return c, nil
}

// ConnectionName returns the connection_name client property, "<binary>:<pid>:<uuid>".
func (c *Conn) ConnectionName() string { return c.connectionName }

// ReplyQueue returns the name of this connection's reply queue, "reply_<uuid hex>".
func (c *Conn) ReplyQueue() string { return c.replyQueue }

func (c *Conn) dial(ctx context.Context) (Transport, error) {
	props := amqp.Table{"connection_name": c.connectionName}
	tr, err := c.opts.dialer(ctx, c.url, props)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactURL(c.url), err)
	}
	return tr, nil
}

func (c *Conn) setTransport(tr Transport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tr = tr
	c.gen++
	c.lost = make(chan struct{})
	close(c.ready)
}

// supervise waits for the transport to die and reconnects with backoff until Close.
func (c *Conn) supervise() {
	defer close(c.runDone)
	for {
		c.mu.Lock()
		tr, lost := c.tr, c.lost
		c.mu.Unlock()
		select {
		case <-c.closing:
			return
		case <-tr.Done():
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.tr = nil
		c.ready = make(chan struct{})
		close(lost) // fails calls waiting on this generation
		c.mu.Unlock()
		c.log.Warn("rpc: broker connection lost, reconnecting", "error", tr.Err(), "url", redactURL(c.url))

		wait := c.opts.backoffMin
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			go func() {
				select {
				case <-c.closing:
					cancel()
				case <-ctx.Done():
				}
			}()
			ntr, err := c.dial(ctx)
			cancel()
			if err == nil {
				c.mu.Lock()
				if c.closed {
					c.mu.Unlock()
					_ = ntr.Close()
					return
				}
				c.mu.Unlock()
				c.setTransport(ntr)
				c.log.Info("rpc: reconnected to broker", "url", redactURL(c.url))
				break
			}
			c.log.Warn("rpc: reconnect failed", "error", err, "retry_in", wait)
			select {
			case <-c.closing:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, c.opts.backoffMax)
		}
	}
}

// transport returns the live transport, waiting for a reconnection if needed.
func (c *Conn) transport(ctx context.Context) (Transport, uint64, chan struct{}, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, 0, nil, ErrClosed
		}
		tr, gen, ready, lost := c.tr, c.gen, c.ready, c.lost
		c.mu.Unlock()
		if tr != nil {
			return tr, gen, lost, nil
		}
		select {
		case <-ready:
		case <-c.closing:
			return nil, 0, nil, ErrClosed
		case <-ctx.Done():
			return nil, 0, nil, fmt.Errorf("waiting for the broker connection: %w", ctx.Err())
		}
	}
}

// publishProps are the basic properties kombu gives every oslo message.
func publishProps(body []byte, expiration string) Publishing {
	return Publishing{Body: body, ContentType: "application/json", ContentEncoding: "utf-8",
		DeliveryMode: 2, Priority: 0, Expiration: expiration}
}

// retryable reports whether a publish failed because the channel or connection went away (so the
// next connection may succeed) rather than because the broker refused the operation.
func retryable(err error, ch Channel, tr Transport) bool {
	if errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnroutable) {
		return false
	}
	return errors.Is(err, ErrChannelClosed) || isDone(ch.Done()) || isDone(tr.Done())
}

// publish sends one message, declaring the exchange first (once per channel, like oslo's
// _declared_exchanges). Connection failures are retried on the next connection until ctx ends.
func (c *Conn) publish(ctx context.Context, ex *ExchangeSpec, key string, mandatory bool, m Publishing) error {
	slot := &c.slots[c.rr.Add(1)%publisherChannels]
	slot.mu.Lock()
	defer slot.mu.Unlock()
	for attempt := 0; ; attempt++ {
		tr, gen, _, err := c.transport(ctx)
		if err != nil {
			return err
		}
		if slot.ch == nil || slot.gen != gen || isDone(slot.ch.Done()) {
			if slot.ch != nil {
				_ = slot.ch.Close()
			}
			slot.ch = nil
			ch, err := tr.Channel(ctx)
			if err != nil {
				if err := c.pauseBeforeRetry(ctx, attempt, err); err != nil {
					return err
				}
				continue
			}
			slot.ch, slot.gen, slot.declared = ch, gen, map[string]bool{}
		}
		if ex != nil && !slot.declared[ex.Name] {
			if err := slot.ch.DeclareExchange(ctx, *ex); err != nil {
				if retryable(err, slot.ch, tr) {
					if err := c.pauseBeforeRetry(ctx, attempt, err); err != nil {
						return err
					}
					continue
				}
				return err
			}
			slot.declared[ex.Name] = true
		}
		exName := ""
		if ex != nil {
			exName = ex.Name
		}
		err = slot.ch.Publish(ctx, exName, key, mandatory, m)
		if err != nil && ctx.Err() == nil && retryable(err, slot.ch, tr) {
			if err := c.pauseBeforeRetry(ctx, attempt, err); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

func (c *Conn) pauseBeforeRetry(ctx context.Context, attempt int, cause error) error {
	c.log.Debug("rpc: publish failed, retrying", "error", cause, "attempt", attempt)
	wait := min(c.opts.backoffMin*time.Duration(1<<min(attempt, 5)), c.opts.backoffMax)
	if attempt == 0 {
		wait = 10 * time.Millisecond
	}
	select {
	case <-time.After(wait):
		return nil
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w (last error: %w)", ctx.Err(), cause)
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Close stops reconnecting, fails waiting calls with ErrClosed and closes the broker connection.
// Serve loops end; call Close after their contexts are done for a graceful shutdown.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	tr := c.tr
	close(c.closing)
	c.mu.Unlock()
	<-c.runDone
	c.bg.Wait()
	if tr != nil {
		return tr.Close()
	}
	return nil
}

// queueArgs returns the x-expires argument oslo puts on reply and fanout queues. py-amqp encodes
// Python ints in this range as a signed 32-bit int; RabbitMQ compares the type too, so int32.
func (c *Conn) transientQueueArgs() amqp.Table {
	if c.opts.queueTTL <= 0 {
		return amqp.Table{}
	}
	return amqp.Table{"x-expires": int32(c.opts.queueTTL / time.Millisecond)}
}

func (c *Conn) exchangeName(t Target) string {
	if t.Exchange != "" {
		return t.Exchange
	}
	return c.opts.exchange
}

func (c *Conn) topicExchange(name string) ExchangeSpec {
	return ExchangeSpec{Name: name, Kind: "topic", Durable: c.opts.durable, AutoDelete: c.opts.autoDelete}
}

func fanoutExchange(topic string) ExchangeSpec {
	return ExchangeSpec{Name: topic + "_fanout", Kind: "fanout", Durable: false, AutoDelete: true}
}
