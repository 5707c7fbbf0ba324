package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"sync"
	"time"
)

// Serve consumes t.Topic, t.Topic.t.Server (if Server is set) and <topic>_fanout_<uuid> on the
// target's exchange, exactly as oslo's AMQPDriverBase.listen declares them, and dispatches every
// request to h until ctx is done. It then stops consuming, waits for the requests in flight (and
// their replies), deletes its fanout queue as oslo does on a clean close, and returns nil.
//
// Messages are acked on receipt, before dispatch (oslo never requeues RPC). Duplicates (same
// _unique_id among the last WithDedupeCacheSize messages) are dropped. Lost connections are
// re-established and the queues re-declared; only a 406 on the very first declaration (flags
// that differ from the existing queues: fix the configuration) makes Serve return an error.
func (c *Conn) Serve(ctx context.Context, t Target, h Handler) error {
	if t.Topic == "" {
		return fmt.Errorf("serve: target has no topic")
	}
	s := &server{
		c: c, t: t, h: h, exchange: c.exchangeName(t),
		fanoutQueue: t.Topic + "_fanout_" + newUniqueID(),
		dedupe:      newDedupe(c.opts.dedupeSize),
		sem:         make(chan struct{}, max(c.opts.workers, 1)),
		log:         c.log.With("topic", t.Topic, "server", t.Server),
	}
	// Handlers outlive ctx: shutdown drains them instead of cancelling work half done.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	s.hctx = hctx

	err := s.run(ctx)
	drained := make(chan struct{})
	go func() { s.inflight.Wait(); close(drained) }()
	if c.opts.drainTimeout > 0 {
		select {
		case <-drained:
		case <-time.After(c.opts.drainTimeout):
			s.log.Warn("rpc: drain timeout, cancelling handlers still running")
			hcancel()
			<-drained
		}
	} else {
		<-drained
	}
	s.deleteFanoutQueue()
	return err
}

// QueueNames returns the queues Serve(t) consumes, the fanout one excepted (its name is random).
func QueueNames(t Target) []string {
	if t.Server == "" {
		return []string{t.Topic}
	}
	return []string{t.Topic, t.Topic + "." + t.Server}
}

type server struct {
	c           *Conn
	t           Target
	h           Handler
	exchange    string
	fanoutQueue string
	dedupe      *dedupe
	sem         chan struct{}
	inflight    sync.WaitGroup
	hctx        context.Context
	log         *slog.Logger
}

func (s *server) run(ctx context.Context) error {
	first := true
	for attempt := 0; ; attempt++ {
		err := s.session(ctx, func() { first = false; attempt = 0 })
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return fmt.Errorf("serve %s: %w", s.t.Topic, err)
		}
		if first && errors.Is(err, ErrPreconditionFailed) {
			return fmt.Errorf("serve %s: %w", s.t.Topic, err)
		}
		s.log.Warn("rpc: consumer stopped, re-declaring", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-s.c.closing:
			return fmt.Errorf("serve %s: %w", s.t.Topic, ErrClosed)
		case <-time.After(backoff(s.c.opts.backoffMin, s.c.opts.backoffMax, attempt)):
		}
	}
}

// session declares the topology on a fresh channel and consumes until the channel ends.
func (s *server) session(ctx context.Context, started func()) error {
	tr, _, _, err := s.c.transport(ctx)
	if err != nil {
		return err
	}
	ch, err := tr.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	c := s.c
	topicEx := c.topicExchange(s.exchange)
	// declare_topic_consumer: exchange, queue (flags from amqp_durable_queues/amqp_auto_delete,
	// no arguments), binding with the queue name as key.
	var queues []string
	for _, q := range QueueNames(s.t) {
		if err := ch.DeclareExchange(ctx, topicEx); err != nil {
			return err
		}
		if err := ch.DeclareQueue(ctx, QueueSpec{Name: q, Durable: c.opts.durable, AutoDelete: c.opts.autoDelete, Args: nil}); err != nil {
			return err
		}
		if err := ch.BindQueue(ctx, q, s.exchange, q); err != nil {
			return err
		}
		queues = append(queues, q)
	}
	// declare_fanout_consumer: auto-delete fanout exchange, non-auto-delete queue with x-expires,
	// bound with the topic as (ignored) key.
	fx := fanoutExchange(s.t.Topic)
	if err := ch.DeclareExchange(ctx, fx); err != nil {
		return err
	}
	if err := ch.DeclareQueue(ctx, QueueSpec{Name: s.fanoutQueue, Args: c.transientQueueArgs()}); err != nil {
		return err
	}
	if err := ch.BindQueue(ctx, s.fanoutQueue, fx.Name, s.t.Topic); err != nil {
		return err
	}
	queues = append(queues, s.fanoutQueue)

	merged := make(chan Delivery)
	var consumers sync.WaitGroup
	for i, q := range queues {
		deliveries, err := ch.Consume(ctx, q, fmt.Sprint(i+1))
		if err != nil {
			return err
		}
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			for d := range deliveries {
				merged <- d
			}
		}()
	}
	allEnded := make(chan struct{})
	go func() { consumers.Wait(); close(allEnded) }()
	started()
	s.log.Debug("rpc: consuming", "queues", queues)
	for {
		select {
		case <-ctx.Done():
			_ = ch.Close()
			// Unblock the forwarders; anything still arriving was not acked and goes back to
			// the queue for the next consumer.
			go func() {
				for range merged {
				}
			}()
			<-allEnded
			close(merged)
			return nil
		case <-allEnded:
			return fmt.Errorf("consumers on %v ended: %w", queues, chErr(ch))
		case d := <-merged:
			s.receive(d)
		}
	}
}

func chErr(ch Channel) error {
	if err := ch.Err(); err != nil {
		return err
	}
	return ErrChannelClosed
}

// receive acks, decodes, dedupes and hands the request to a worker.
func (s *server) receive(d Delivery) {
	if err := d.Ack(); err != nil {
		// Like oslo: a message that cannot be acked is not processed; it will be redelivered.
		s.log.Warn("rpc: failed to ack message, skipping it", "error", err)
		return
	}
	if len(d.Body) > s.c.opts.maxMessageBytes {
		msgID, replyQ := scanReplyCoordinates(d.Body)
		msg := fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", len(d.Body), s.c.opts.maxMessageBytes)
		s.log.Warn("rpc: dropping oversized message", "bytes", len(d.Body), "msg_id", msgID)
		if replyQ != "" {
			s.spawn(func() { s.reply(msgID, replyQ, nil, pyException("ValueError", msg)) })
		}
		return
	}
	req, err := DecodeRequest(d.Body)
	if err != nil {
		s.log.Warn("rpc: malformed message", "error", err, "msg_id", req.MsgID, "routing_key", d.RoutingKey)
		if req.Call {
			f := pyException("TypeError", err.Error())
			var pf *Failure
			if errors.As(err, &pf) {
				f = pf
			}
			s.spawn(func() { s.reply(req.MsgID, req.ReplyQueue, nil, f) })
		}
		return
	}
	if req.UniqueID != "" && !s.dedupe.add(req.UniqueID) {
		s.log.Info("rpc: ignoring duplicate message", "unique_id", req.UniqueID, "msg_id", req.MsgID, "method", req.Method)
		return
	}
	s.spawn(func() { s.dispatch(req) })
}

func (s *server) spawn(f func()) {
	s.sem <- struct{}{}
	s.inflight.Add(1)
	go func() {
		defer func() { <-s.sem; s.inflight.Done() }()
		f()
	}()
}

func (s *server) dispatch(req *Request) {
	log := s.log.With("request_id", req.Context.RequestID(), "method", req.Method, "msg_id", req.MsgID)
	ctx := withRequestLogger(s.hctx, log)
	stopHB := s.startHeartbeats(req, log)
	result, err := s.call(ctx, req)
	stopHB()
	if !req.Call {
		if err != nil {
			log.Warn("rpc: cast failed", "error", err)
		}
		return
	}
	var raw json.RawMessage
	var fail *Failure
	if err != nil {
		fail = failureFromError(err)
		log.Debug("rpc: call failed", "error", err)
	} else if result != nil {
		raw, err = marshalCompact(result)
		if err != nil {
			fail = pyException("TypeError", fmt.Sprintf("cannot encode result of %s: %v", req.Method, err))
		}
	}
	s.reply(req.MsgID, req.ReplyQueue, raw, fail)
}

// call runs the handler, turning a panic into a failure.
func (s *server) call(ctx context.Context, req *Request) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rpc: handler panicked", "method", req.Method, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, pyException("RuntimeError", fmt.Sprintf("handler for %s panicked: %v", req.Method, r))
		}
	}()
	return s.h.Handle(ctx, req)
}

// startHeartbeats sends call-monitor heartbeats every int(_timeout)/2 seconds, as
// RPCDispatcher._watchdog does (nothing if that is below one second).
func (s *server) startHeartbeats(req *Request, log *slog.Logger) func() {
	if !req.Call || req.MonitorTimeout <= 0 {
		return func() {}
	}
	interval := time.Duration(float64(int(req.MonitorTimeout)) / 2 * float64(time.Second))
	if interval < time.Second {
		log.Warn("rpc: client provided an invalid call-monitor timeout", "timeout", req.MonitorTimeout)
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				body, err := encodeReply(req.MsgID, nil, nil, false)
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), interval)
					err = s.c.publish(ctx, nil, req.ReplyQueue, true, publishProps(body, ""))
					cancel()
				}
				if err != nil {
					log.Debug("rpc: call-monitor heartbeat failed", "error", err)
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// reply publishes the final reply to the default exchange, mandatory. A missing reply queue is
// retried every 250 ms for WithReplyRetry, as AMQPIncomingMessage.reply does.
func (s *server) reply(msgID, replyQ string, result json.RawMessage, fail *Failure) {
	body, err := encodeReply(msgID, result, fail, true)
	if err != nil {
		// The result could not be encoded: tell the caller instead of leaving it to time out.
		body, err = encodeReply(msgID, nil, pyException("TypeError", err.Error()), true)
		if err != nil {
			s.log.Error("rpc: cannot encode reply", "msg_id", msgID, "error", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.c.opts.replyRetry+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(s.c.opts.replyRetry)
	for {
		err := s.c.publish(ctx, nil, replyQ, true, publishProps(body, ""))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrUnroutable) || time.Now().After(deadline) {
			s.log.Error("rpc: reply not sent, abandoning", "msg_id", msgID, "reply_q", replyQ, "error", err)
			return
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-s.c.closing:
			return
		}
	}
}

func (s *server) deleteFanoutQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, _, _, err := s.c.transport(ctx)
	if err != nil {
		return
	}
	ch, err := tr.Channel(ctx)
	if err != nil {
		return
	}
	defer ch.Close()
	if err := ch.DeleteQueue(ctx, s.fanoutQueue); err != nil {
		s.log.Debug("rpc: delete fanout queue", "queue", s.fanoutQueue, "error", err)
	}
}

var (
	reMsgID  = regexp.MustCompile(`\\"_msg_id\\": *\\"([0-9a-f]{32})\\"`)
	reReplyQ = regexp.MustCompile(`\\"_reply_q\\": *\\"(reply_[0-9a-f]{32})\\"`)
)

// scanReplyCoordinates finds _msg_id and _reply_q in an enveloped body too big to decode. oslo
// writes them after "args", so the last occurrence is the top-level one.
func scanReplyCoordinates(body []byte) (msgID, replyQ string) {
	tail := body
	if len(tail) > 1<<20 {
		tail = tail[len(tail)-1<<20:]
	}
	last := func(re *regexp.Regexp) string {
		all := re.FindAllSubmatch(tail, -1)
		if len(all) == 0 {
			return ""
		}
		return string(all[len(all)-1][1])
	}
	msgID, replyQ = last(reMsgID), last(reReplyQ)
	if msgID == "" || replyQ == "" || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return "", ""
	}
	return msgID, replyQ
}

// dedupe remembers the last n unique ids (oslo's _MsgIdCache).
type dedupe struct {
	mu   sync.Mutex
	ring []string
	next int
	seen map[string]struct{}
}

func newDedupe(n int) *dedupe {
	return &dedupe{ring: make([]string, max(n, 1)), seen: map[string]struct{}{}}
}

// add records id and reports whether it was new.
func (d *dedupe) add(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[id]; ok {
		return false
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.seen, old)
	}
	d.ring[d.next] = id
	d.seen[id] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
	return true
}

type loggerKey struct{}

func withRequestLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger returns the request-scoped logger Serve puts into handler contexts (with topic, method,
// msg_id and request_id), or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
