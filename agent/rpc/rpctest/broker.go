package rpctest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	amqp "github.com/rabbitmq/amqp091-go"
)

const vhost = "/"

// Broker is an in-memory AMQP 0-9-1 broker with RabbitMQ's semantics for what oslo.messaging
// uses: topic, fanout and direct exchanges plus the default exchange, queues and bindings,
// equivalence checks on re-declaration that fail with the same 406 text RabbitMQ sends (and close
// the channel), passive declares (404), mandatory returns, publisher confirms, manual acks with
// redelivery of unacked messages when a channel closes, auto-delete exchanges and queues,
// x-expires on unused queues and per-message expiration. Its Dial is an rpc.Dialer.
type Broker struct {
	mu        sync.Mutex
	exchanges map[string]*exchange
	queues    map[string]*queue
	conns     map[*conn]bool
	now       func() time.Time
}

// NewBroker returns an empty broker (only the default exchange exists).
func NewBroker() *Broker {
	return &Broker{exchanges: map[string]*exchange{}, queues: map[string]*queue{}, conns: map[*conn]bool{}, now: time.Now}
}

type exchange struct {
	name, kind          string
	durable, autoDelete bool
	bindings            []binding
}

type binding struct{ queue, key string }

type queue struct {
	name                           string
	durable, autoDelete, exclusive bool
	args                           amqp.Table
	messages                       []*message
	consumers                      []*consumer
	next                           int
	hadConsumer                    bool
	lastUsed                       time.Time
}

type message struct {
	pub                  rpc.Publishing
	exchange, routingKey string
	redelivered          bool
	expires              time.Time // zero: never
}

// QueueInfo describes a queue (what rabbitmqctl list_queues shows).
type QueueInfo struct {
	Name                string
	Durable, AutoDelete bool
	Args                amqp.Table
	Messages, Consumers int
}

// ExchangeInfo describes an exchange.
type ExchangeInfo struct {
	Name, Kind          string
	Durable, AutoDelete bool
}

// Queue returns a queue's description, false if it does not exist.
func (b *Broker) Queue(name string) (QueueInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked()
	q, ok := b.queues[name]
	if !ok {
		return QueueInfo{}, false
	}
	return QueueInfo{Name: q.name, Durable: q.durable, AutoDelete: q.autoDelete, Args: q.args, Messages: len(q.messages), Consumers: len(q.consumers)}, true
}

// Exchange returns an exchange's description, false if it does not exist.
func (b *Broker) Exchange(name string) (ExchangeInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x, ok := b.exchanges[name]
	if !ok {
		return ExchangeInfo{}, false
	}
	return ExchangeInfo{Name: x.name, Kind: x.kind, Durable: x.durable, AutoDelete: x.autoDelete}, true
}

// QueuesWithPrefix lists queue names starting with prefix.
func (b *Broker) QueuesWithPrefix(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for n := range b.queues {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// CloseConnections force-closes the connections whose connection_name has the given prefix
// ("" = all), as `rabbitmqctl close_connection` does, and reports how many it closed.
func (b *Broker) CloseConnections(namePrefix string) int {
	b.mu.Lock()
	var victims []*conn
	for c := range b.conns {
		if strings.HasPrefix(c.name, namePrefix) {
			victims = append(victims, c)
		}
	}
	b.mu.Unlock()
	for _, c := range victims {
		c.shutdown(&rpc.BrokerError{Code: 320, Reason: "CONNECTION_FORCED - Closed via management plugin"})
	}
	return len(victims)
}

// Restart simulates a broker restart: every connection is closed and every non-durable exchange
// and queue (all of oslo's by default) is lost.
func (b *Broker) Restart() {
	b.mu.Lock()
	victims := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		victims = append(victims, c)
	}
	b.mu.Unlock()
	for _, c := range victims {
		c.shutdown(&rpc.BrokerError{Code: 320, Reason: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for n, x := range b.exchanges {
		if !x.durable {
			delete(b.exchanges, n)
		}
	}
	for n, q := range b.queues {
		if !q.durable {
			delete(b.queues, n)
		}
	}
}

// Dial is an rpc.Dialer connecting to this broker; the URL is ignored.
func (b *Broker) Dial(ctx context.Context, _ string, props amqp.Table) (rpc.Transport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, _ := props["connection_name"].(string)
	c := &conn{b: b, name: name, done: make(chan struct{}), chans: map[*channel]bool{}}
	b.mu.Lock()
	b.conns[c] = true
	b.mu.Unlock()
	return c, nil
}

// expireLocked deletes queues whose x-expires elapsed while unused.
func (b *Broker) expireLocked() {
	now := b.now()
	for n, q := range b.queues {
		ms, ok := intArg(q.args["x-expires"])
		if !ok || len(q.consumers) > 0 {
			continue
		}
		if now.Sub(q.lastUsed) >= time.Duration(ms)*time.Millisecond {
			b.deleteQueueLocked(n)
		}
	}
}

func (b *Broker) deleteQueueLocked(name string) {
	q, ok := b.queues[name]
	if !ok {
		return
	}
	delete(b.queues, name)
	for _, cs := range q.consumers {
		cs.cancelLocked() // basic.cancel from the broker
	}
	for xn, x := range b.exchanges {
		kept := x.bindings[:0]
		for _, bd := range x.bindings {
			if bd.queue != name {
				kept = append(kept, bd)
			}
		}
		x.bindings = kept
		if x.autoDelete && len(kept) == 0 {
			delete(b.exchanges, xn)
		}
	}
}

// route returns the queues a message reaches.
func (b *Broker) routeLocked(exName, key string) ([]*queue, error) {
	if exName == "" {
		if q, ok := b.queues[key]; ok {
			return []*queue{q}, nil
		}
		return nil, nil
	}
	x, ok := b.exchanges[exName]
	if !ok {
		return nil, &rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", exName, vhost)}
	}
	seen := map[string]bool{}
	var out []*queue
	for _, bd := range x.bindings {
		match := false
		switch x.kind {
		case "fanout":
			match = true
		case "direct":
			match = bd.key == key
		case "topic":
			match = topicMatch(bd.key, key)
		}
		if match && !seen[bd.queue] {
			if q, ok := b.queues[bd.queue]; ok {
				seen[bd.queue] = true
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// topicMatch implements AMQP topic matching: words split by ".", "*" one word, "#" zero or more.
func topicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(k); i++ {
				if matchWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(k) == 0 {
				return false
			}
		default:
			if len(k) == 0 || k[0] != p[0] {
				return false
			}
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}

// enqueueLocked stores m in q, pushing it to a consumer right away (RabbitMQ with no prefetch
// limit, as oslo runs it).
func (b *Broker) enqueueLocked(q *queue, m *message) {
	if len(q.consumers) == 0 {
		q.messages = append(q.messages, m)
		return
	}
	cs := q.consumers[q.next%len(q.consumers)]
	q.next++
	cs.deliverLocked(q, m)
}

// drainToConsumersLocked hands queued messages to consumers, dropping expired ones.
func (b *Broker) drainToConsumersLocked(q *queue) {
	now := b.now()
	for len(q.messages) > 0 && len(q.consumers) > 0 {
		m := q.messages[0]
		q.messages = q.messages[1:]
		if !m.expires.IsZero() && now.After(m.expires) {
			continue
		}
		cs := q.consumers[q.next%len(q.consumers)]
		q.next++
		cs.deliverLocked(q, m)
	}
}

func intArg(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// amqpType is the field type name RabbitMQ prints for a value amqp091 encodes.
func amqpType(v any) string {
	switch v.(type) {
	case int32:
		return "signedint"
	case int, int64:
		return "long"
	case int16:
		return "short"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case uint16:
		return "unsignedshort"
	case uint32:
		return "unsignedint"
	case string, []byte:
		return "longstr"
	case bool:
		return "bool"
	case float32:
		return "float"
	case float64:
		return "double"
	case amqp.Table:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func argString(v any) string {
	if n, ok := intArg(v); ok {
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprint(v)
}

func argsEqual(a, b any) bool {
	na, aok := intArg(a)
	nb, bok := intArg(b)
	if aok && bok {
		return na == nb
	}
	return fmt.Sprint(a) == fmt.Sprint(b) && amqpType(a) == amqpType(b)
}

// checkedQueueArgs are the queue arguments RabbitMQ compares on re-declaration.
var checkedQueueArgs = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
	"x-queue-type", "x-single-active-consumer",
}

func precondition(format string, a ...any) error {
	return &rpc.BrokerError{Code: rpc.CodePreconditionFailed, Reason: "PRECONDITION_FAILED - " + fmt.Sprintf(format, a...)}
}

func inequivalentBool(arg, kind, name string, received, current bool) error {
	return precondition("inequivalent arg '%s' for %s '%s' in vhost '%s': received '%t' but current is '%t'", arg, kind, name, vhost, received, current)
}

func (b *Broker) declareExchangeLocked(s rpc.ExchangeSpec) error {
	if s.Name == "" {
		return &rpc.BrokerError{Code: 403, Reason: "ACCESS_REFUSED - operation not permitted on the default exchange"}
	}
	x, ok := b.exchanges[s.Name]
	if s.Passive {
		if !ok {
			return &rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", s.Name, vhost)}
		}
		return nil
	}
	if strings.HasPrefix(s.Name, "amq.") {
		return &rpc.BrokerError{Code: 403, Reason: fmt.Sprintf("ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'", s.Name)}
	}
	switch s.Kind {
	case "topic", "fanout", "direct":
	default:
		return &rpc.BrokerError{Code: 503, Reason: fmt.Sprintf("COMMAND_INVALID - unknown exchange type '%s'", s.Kind)}
	}
	if !ok {
		b.exchanges[s.Name] = &exchange{name: s.Name, kind: s.Kind, durable: s.Durable, autoDelete: s.AutoDelete}
		return nil
	}
	switch {
	case x.kind != s.Kind:
		return precondition("inequivalent arg 'type' for exchange '%s' in vhost '%s': received '%s' but current is '%s'", s.Name, vhost, s.Kind, x.kind)
	case x.durable != s.Durable:
		return inequivalentBool("durable", "exchange", s.Name, s.Durable, x.durable)
	case x.autoDelete != s.AutoDelete:
		return inequivalentBool("auto_delete", "exchange", s.Name, s.AutoDelete, x.autoDelete)
	}
	return nil
}

func (b *Broker) declareQueueLocked(s rpc.QueueSpec) error {
	b.expireLocked()
	q, ok := b.queues[s.Name]
	if s.Passive {
		if !ok {
			return &rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '%s'", s.Name, vhost)}
		}
		return nil
	}
	if !ok {
		if v, has := s.Args["x-expires"]; has {
			if n, isInt := intArg(v); !isInt || n <= 0 {
				return precondition("invalid arg 'x-expires' for queue '%s' in vhost '%s': {value_zero,%s}", s.Name, vhost, argString(v))
			}
		}
		args := amqp.Table{}
		for k, v := range s.Args {
			args[k] = v
		}
		b.queues[s.Name] = &queue{name: s.Name, durable: s.Durable, autoDelete: s.AutoDelete, exclusive: s.Exclusive, args: args, lastUsed: b.now()}
		return nil
	}
	switch {
	case q.durable != s.Durable:
		return inequivalentBool("durable", "queue", s.Name, s.Durable, q.durable)
	case q.autoDelete != s.AutoDelete:
		return inequivalentBool("auto_delete", "queue", s.Name, s.AutoDelete, q.autoDelete)
	}
	for _, k := range checkedQueueArgs {
		cur, hasCur := q.args[k]
		got, hasGot := s.Args[k]
		switch {
		case !hasCur && !hasGot:
		case hasCur && !hasGot:
			return precondition("inequivalent arg '%s' for queue '%s' in vhost '%s': received none but current is the value '%s' of type '%s'", k, s.Name, vhost, argString(cur), amqpType(cur))
		case !hasCur && hasGot:
			return precondition("inequivalent arg '%s' for queue '%s' in vhost '%s': received the value '%s' of type '%s' but current is none", k, s.Name, vhost, argString(got), amqpType(got))
		case !argsEqual(cur, got):
			return precondition("inequivalent arg '%s' for queue '%s' in vhost '%s': received '%s' but current is '%s'", k, s.Name, vhost, argString(got), argString(cur))
		}
	}
	q.lastUsed = b.now()
	return nil
}

func (b *Broker) bindLocked(queueName, exName, key string) error {
	b.expireLocked()
	if _, ok := b.queues[queueName]; !ok {
		return &rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '%s'", queueName, vhost)}
	}
	if exName == "" {
		return &rpc.BrokerError{Code: 403, Reason: "ACCESS_REFUSED - operation not permitted on the default exchange"}
	}
	x, ok := b.exchanges[exName]
	if !ok {
		return &rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", exName, vhost)}
	}
	for _, bd := range x.bindings {
		if bd.queue == queueName && bd.key == key {
			return nil
		}
	}
	x.bindings = append(x.bindings, binding{queue: queueName, key: key})
	return nil
}

// conn is one client connection.
type conn struct {
	b     *Broker
	name  string
	mu    sync.Mutex
	chans map[*channel]bool
	done  chan struct{}
	err   error
}

var _ rpc.Transport = (*conn)(nil)

func (c *conn) Channel(ctx context.Context) (rpc.Channel, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, fmt.Errorf("open channel: %w: connection closed", rpc.ErrChannelClosed)
	}
	ch := &channel{c: c, done: make(chan struct{}), unacked: map[uint64]*unacked{}, consumers: map[string]*consumer{}}
	c.chans[ch] = true
	return ch, nil
}

func (c *conn) Done() <-chan struct{} { return c.done }

func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) Close() error {
	c.shutdown(rpc.ErrClosed)
	return nil
}

func (c *conn) shutdown(reason error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = reason
	chans := make([]*channel, 0, len(c.chans))
	for ch := range c.chans {
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		ch.shutdown(reason)
	}
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
	close(c.done)
}

// channel is one AMQP channel.
type channel struct {
	c         *conn
	done      chan struct{}
	err       error // guarded by the broker lock
	nextTag   uint64
	unacked   map[uint64]*unacked
	consumers map[string]*consumer
}

type unacked struct {
	q *queue
	m *message
}

var _ rpc.Channel = (*channel)(nil)

// fail closes the channel with a channel exception (caller holds the broker lock).
func (ch *channel) failLocked(err error) error {
	ch.closeLocked(err)
	return err
}

func (ch *channel) closedErrLocked() error {
	if ch.err != nil {
		return fmt.Errorf("%w: channel/connection is not open", rpc.ErrChannelClosed)
	}
	return nil
}

func (ch *channel) DeclareExchange(_ context.Context, s rpc.ExchangeSpec) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return fmt.Errorf("declare exchange %q: %w", s.Name, err)
	}
	if err := b.declareExchangeLocked(s); err != nil {
		return fmt.Errorf("declare exchange %q: %w", s.Name, ch.failLocked(err))
	}
	return nil
}

func (ch *channel) DeclareQueue(_ context.Context, s rpc.QueueSpec) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.Name, err)
	}
	if err := b.declareQueueLocked(s); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.Name, ch.failLocked(err))
	}
	return nil
}

func (ch *channel) BindQueue(_ context.Context, queueName, exName, key string) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return fmt.Errorf("bind queue %q: %w", queueName, err)
	}
	if err := b.bindLocked(queueName, exName, key); err != nil {
		return fmt.Errorf("bind queue %q to %q with key %q: %w", queueName, exName, key, ch.failLocked(err))
	}
	return nil
}

func (ch *channel) DeleteQueue(_ context.Context, name string) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return fmt.Errorf("delete queue %q: %w", name, err)
	}
	b.deleteQueueLocked(name)
	return nil
}

func (ch *channel) Publish(_ context.Context, exName, key string, mandatory bool, p rpc.Publishing) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return fmt.Errorf("publish to %q key %q: %w", exName, key, err)
	}
	b.expireLocked()
	qs, err := b.routeLocked(exName, key)
	if err != nil {
		return fmt.Errorf("publish to %q key %q: %w", exName, key, ch.failLocked(err))
	}
	if len(qs) == 0 {
		if mandatory {
			return fmt.Errorf("publish to %q key %q: %w: 312 NO_ROUTE", exName, key, rpc.ErrUnroutable)
		}
		return nil
	}
	body := append([]byte(nil), p.Body...)
	for _, q := range qs {
		m := &message{pub: p, exchange: exName, routingKey: key}
		m.pub.Body = body
		if p.Expiration != "" {
			if ms, err := strconv.ParseInt(p.Expiration, 10, 64); err == nil {
				m.expires = b.now().Add(time.Duration(ms) * time.Millisecond)
			}
		}
		b.enqueueLocked(q, m)
	}
	return nil
}

func (ch *channel) Consume(_ context.Context, queueName, tag string) (<-chan rpc.Delivery, error) {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return nil, fmt.Errorf("consume %q: %w", queueName, err)
	}
	b.expireLocked()
	q, ok := b.queues[queueName]
	if !ok {
		return nil, fmt.Errorf("consume %q: %w", queueName, ch.failLocked(&rpc.BrokerError{Code: rpc.CodeNotFound, Reason: fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '%s'", queueName, vhost)}))
	}
	if _, dup := ch.consumers[tag]; dup {
		return nil, fmt.Errorf("consume %q: %w", queueName, ch.failLocked(&rpc.BrokerError{Code: 530, Reason: fmt.Sprintf("NOT_ALLOWED - attempt to reuse consumer tag '%s'", tag)}))
	}
	cs := &consumer{ch: ch, q: q, tag: tag, out: make(chan rpc.Delivery), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	ch.consumers[tag] = cs
	q.consumers = append(q.consumers, cs)
	q.hadConsumer = true
	q.lastUsed = b.now()
	go cs.pump()
	b.drainToConsumersLocked(q)
	return cs.out, nil
}

func (ch *channel) Done() <-chan struct{} { return ch.done }

func (ch *channel) Err() error {
	ch.c.b.mu.Lock()
	defer ch.c.b.mu.Unlock()
	return ch.err
}

func (ch *channel) Close() error {
	ch.shutdown(rpc.ErrChannelClosed)
	return nil
}

func (ch *channel) shutdown(reason error) {
	b := ch.c.b
	b.mu.Lock()
	ch.closeLocked(reason)
	b.mu.Unlock()
}

// closeLocked ends the channel: consumers stop, unacked messages go back to the head of their
// queues marked redelivered (in delivery order), and Done is closed.
func (ch *channel) closeLocked(reason error) {
	if ch.err != nil {
		return
	}
	ch.err = reason
	b := ch.c.b
	for _, cs := range ch.consumers {
		cs.cancelLocked()
	}
	tags := make([]uint64, 0, len(ch.unacked))
	for t := range ch.unacked {
		tags = append(tags, t)
	}
	// Requeue in reverse tag order at the head so the original order is kept.
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0 && tags[j] > tags[j-1]; j-- {
			tags[j], tags[j-1] = tags[j-1], tags[j]
		}
	}
	touched := map[*queue]bool{}
	for _, t := range tags {
		u := ch.unacked[t]
		if _, alive := b.queues[u.q.name]; !alive || b.queues[u.q.name] != u.q {
			continue
		}
		m := *u.m
		m.redelivered = true
		u.q.messages = append([]*message{&m}, u.q.messages...)
		touched[u.q] = true
	}
	ch.unacked = map[uint64]*unacked{}
	for q := range touched {
		b.drainToConsumersLocked(q)
	}
	ch.c.mu.Lock()
	delete(ch.c.chans, ch)
	ch.c.mu.Unlock()
	close(ch.done)
}

func (ch *channel) ack(tag uint64) error {
	b := ch.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ch.closedErrLocked(); err != nil {
		return err
	}
	if _, ok := ch.unacked[tag]; !ok {
		return ch.failLocked(precondition("unknown delivery tag %d", tag))
	}
	delete(ch.unacked, tag)
	return nil
}

// consumer pushes deliveries to its Go channel from a goroutine, so that the broker never blocks
// on a slow client while holding its lock.
type consumer struct {
	ch      *channel
	q       *queue
	tag     string
	out     chan rpc.Delivery
	pending []rpc.Delivery // guarded by the broker lock
	wake    chan struct{}
	stop    chan struct{}
	stopped bool
}

func (cs *consumer) deliverLocked(q *queue, m *message) {
	ch := cs.ch
	ch.nextTag++
	tag := ch.nextTag
	ch.unacked[tag] = &unacked{q: q, m: m}
	cs.pending = append(cs.pending, rpc.Delivery{
		Publishing: m.pub, Exchange: m.exchange, RoutingKey: m.routingKey, Redelivered: m.redelivered,
		Acker: func() error { return ch.ack(tag) },
	})
	select {
	case cs.wake <- struct{}{}:
	default:
	}
}

// cancelLocked detaches the consumer; its unsent deliveries stay unacked on the channel and are
// requeued when the channel closes (or by the caller, for a cancel on a live channel).
func (cs *consumer) cancelLocked() {
	if cs.stopped {
		return
	}
	cs.stopped = true
	q := cs.q
	for i, c := range q.consumers {
		if c == cs {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	q.lastUsed = cs.ch.c.b.now()
	delete(cs.ch.consumers, cs.tag)
	close(cs.stop)
	if q.autoDelete && q.hadConsumer && len(q.consumers) == 0 {
		cs.ch.c.b.deleteQueueLocked(q.name)
	}
}

func (cs *consumer) pump() {
	defer close(cs.out)
	b := cs.ch.c.b
	for {
		b.mu.Lock()
		var d *rpc.Delivery
		if len(cs.pending) > 0 && !cs.stopped {
			dd := cs.pending[0]
			cs.pending = cs.pending[1:]
			d = &dd
		}
		b.mu.Unlock()
		if d == nil {
			select {
			case <-cs.wake:
				continue
			case <-cs.stop:
				return
			}
		}
		select {
		case cs.out <- *d:
		case <-cs.stop:
			return
		}
	}
}
