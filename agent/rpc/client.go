package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Target names where a message goes or what a server consumes, like oslo_messaging.Target.
type Target struct {
	// Exchange is the topic exchange; "" means the connection's default (control_exchange).
	Exchange string
	// Topic is e.g. "compute" or "conductor".
	Topic string
	// Server narrows a call or cast to one host: routing key "<topic>.<server>".
	Server string
	// Fanout sends a cast to every server of the topic (exchange "<topic>_fanout").
	Fanout bool
	// Namespace and Version are put into requests ("" = absent).
	Namespace, Version string
}

// CallOptions are the knobs of one call beyond the target.
type CallOptions struct {
	// Timeout is the overall time to wait for the reply and the AMQP expiration of the request
	// (oslo's timeout); 0 means DefaultCallTimeout.
	Timeout time.Duration
	// MonitorTimeout, if set, is sent as _timeout: the server then sends a heartbeat every
	// MonitorTimeout/2 and the call fails if nothing arrives for MonitorTimeout
	// (oslo's call_monitor_timeout).
	MonitorTimeout time.Duration
}

// Call sends a request and waits for its reply. A failure in the reply is returned as *Failure.
// timeout 0 means DefaultCallTimeout.
func (c *Conn) Call(ctx context.Context, t Target, rctx Context, method string, args map[string]any, timeout time.Duration) (json.RawMessage, error) {
	return c.CallWithOptions(ctx, t, rctx, method, args, CallOptions{Timeout: timeout})
}

// CallWithOptions is Call with a call-monitor timeout.
func (c *Conn) CallWithOptions(ctx context.Context, t Target, rctx Context, method string, args map[string]any, o CallOptions) (json.RawMessage, error) {
	if t.Fanout {
		return nil, fmt.Errorf("call %s on topic %s: a call cannot be fanout", method, t.Topic)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultCallTimeout
	}
	if err := c.startReplyConsumer(ctx); err != nil {
		return nil, fmt.Errorf("call %s: %w", method, err)
	}
	msgID := newUniqueID()
	body, err := encodeRequest(outgoing{
		method: method, namespace: t.Namespace, version: t.Version, args: args, ctx: rctx,
		msgID: msgID, replyQ: c.replyQueue, monitor: o.MonitorTimeout.Seconds(), uniqueID: newUniqueID(),
	})
	if err != nil {
		return nil, err
	}
	replies := make(chan *reply, 8)
	c.waitersMu.Lock()
	c.waiters[msgID] = replies
	c.waitersMu.Unlock()
	defer func() {
		c.waitersMu.Lock()
		delete(c.waiters, msgID)
		c.waitersMu.Unlock()
	}()

	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	pubCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ex := c.topicExchange(c.exchangeName(t))
	key := t.Topic
	if t.Server != "" {
		key = t.Topic + "." + t.Server
	}
	// The generation whose loss fails this call is the one the request was published on.
	_, _, lost, err := c.transport(pubCtx)
	if err != nil {
		return nil, fmt.Errorf("call %s to %s: %w", method, key, err)
	}
	if err := c.publish(pubCtx, &ex, key, false, publishProps(body, strconv.FormatInt(o.Timeout.Milliseconds(), 10))); err != nil {
		return nil, fmt.Errorf("call %s to %s: %w", method, key, err)
	}
	c.mu.Lock()
	if c.lost != lost && c.tr != nil {
		// Published on a newer connection than the one sampled above.
		lost = c.lost
	}
	c.mu.Unlock()

	var monitor <-chan time.Time
	var monitorTimer *time.Timer
	if o.MonitorTimeout > 0 {
		monitorTimer = time.NewTimer(o.MonitorTimeout)
		defer monitorTimer.Stop()
		monitor = monitorTimer.C
	}
	var final json.RawMessage
	for {
		select {
		case r := <-replies:
			if r.Failure != nil {
				return nil, fmt.Errorf("call %s to %s: %w", method, key, r.Failure)
			}
			if r.Result != nil {
				final = r.Result
			} else if !r.Ending && monitorTimer != nil {
				monitorTimer.Reset(o.MonitorTimeout)
			}
			if r.Ending {
				if final == nil {
					final = json.RawMessage("null")
				}
				return final, nil
			}
		case <-deadline.C:
			return nil, fmt.Errorf("call %s to %s: %w to message ID %s after %s", method, key, ErrTimeout, msgID, o.Timeout)
		case <-monitor:
			return nil, fmt.Errorf("call %s to %s: %w to message ID %s (no call-monitor heartbeat for %s)", method, key, ErrTimeout, msgID, o.MonitorTimeout)
		case <-lost:
			return nil, fmt.Errorf("call %s to %s (message ID %s): %w", method, key, msgID, ErrConnectionLost)
		case <-c.closing:
			return nil, fmt.Errorf("call %s to %s: %w", method, key, ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("call %s to %s: %w", method, key, ctx.Err())
		}
	}
}

// Cast sends a request without waiting for any answer (to every server if t.Fanout).
func (c *Conn) Cast(ctx context.Context, t Target, rctx Context, method string, args map[string]any) error {
	body, err := encodeRequest(outgoing{method: method, namespace: t.Namespace, version: t.Version,
		args: args, ctx: rctx, uniqueID: newUniqueID()})
	if err != nil {
		return err
	}
	if t.Fanout {
		ex := fanoutExchange(t.Topic)
		if err := c.publish(ctx, &ex, "", false, publishProps(body, "")); err != nil {
			return fmt.Errorf("fanout cast %s to %s: %w", method, ex.Name, err)
		}
		return nil
	}
	ex := c.topicExchange(c.exchangeName(t))
	key := t.Topic
	if t.Server != "" {
		key = t.Topic + "." + t.Server
	}
	if err := c.publish(ctx, &ex, key, false, publishProps(body, "")); err != nil {
		return fmt.Errorf("cast %s to %s: %w", method, key, err)
	}
	return nil
}

// startReplyConsumer declares and consumes the reply queue once, on first use (like oslo's
// _get_reply_q), and keeps it consumed across reconnections.
func (c *Conn) startReplyConsumer(ctx context.Context) error {
	c.replyOnce.Do(func() {
		c.bg.Add(1)
		go c.replyLoop()
	})
	select {
	case <-c.replyReady:
		return c.replyErr
	case <-c.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("waiting for reply queue %s: %w", c.replyQueue, ctx.Err())
	}
}

func (c *Conn) replyLoop() {
	defer c.bg.Done()
	first := true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.closing
		cancel()
	}()
	for attempt := 0; ; attempt++ {
		err := c.consumeReplies(ctx, func() {
			if first {
				first = false
				close(c.replyReady)
			}
			attempt = 0
		})
		if ctx.Err() != nil {
			if first {
				c.replyErr = ErrClosed
				close(c.replyReady)
			}
			return
		}
		if err != nil {
			if first && errors.Is(err, ErrPreconditionFailed) {
				c.replyErr = err
				close(c.replyReady)
				return
			}
			c.log.Warn("rpc: reply queue consumer stopped, restarting", "queue", c.replyQueue, "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff(c.opts.backoffMin, c.opts.backoffMax, attempt)):
		}
	}
}

func backoff(first, max time.Duration, attempt int) time.Duration {
	if attempt == 0 {
		return 50 * time.Millisecond
	}
	return min(first*time.Duration(1<<min(attempt-1, 6)), max)
}

// consumeReplies runs one consumer session on the reply queue until the channel ends.
func (c *Conn) consumeReplies(ctx context.Context, started func()) error {
	tr, _, _, err := c.transport(ctx)
	if err != nil {
		return err
	}
	ch, err := tr.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	// declare_direct_consumer: bound to nothing, reached through the default exchange.
	if err := ch.DeclareQueue(ctx, QueueSpec{Name: c.replyQueue, Args: c.transientQueueArgs()}); err != nil {
		return err
	}
	deliveries, err := ch.Consume(ctx, c.replyQueue, "1")
	if err != nil {
		return err
	}
	started()
	for {
		select {
		case <-ctx.Done():
			_ = ch.Close()
			for range deliveries {
			}
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("reply consumer on %s ended: %w", c.replyQueue, ch.Err())
			}
			if err := d.Ack(); err != nil {
				c.log.Debug("rpc: ack reply failed", "queue", c.replyQueue, "error", err)
			}
			c.routeReply(d.Body)
		}
	}
}

func (c *Conn) routeReply(body []byte) {
	if len(body) > c.opts.maxMessageBytes {
		c.log.Warn("rpc: dropping oversized reply", "bytes", len(body))
		return
	}
	r, err := decodeReply(body)
	if r == nil || r.MsgID == "" {
		c.log.Warn("rpc: dropping undecodable reply", "error", err)
		return
	}
	if err != nil {
		// Python raises in the caller (KeyError on a missing failure); surface it the same way.
		msg := err.Error()
		r.Failure = &Failure{Module: ModuleBuiltins, Class: "KeyError", Message: msg, Args: []any{msg}}
		r.Ending = true
	}
	c.waitersMu.Lock()
	w := c.waiters[r.MsgID]
	c.waitersMu.Unlock()
	if w == nil {
		c.log.Debug("rpc: no waiter for reply (caller gave up)", "msg_id", r.MsgID)
		return
	}
	select {
	case w <- r:
	default:
		c.log.Warn("rpc: reply waiter overflow, dropping message", "msg_id", r.MsgID)
	}
}
