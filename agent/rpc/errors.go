package rpc

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (wrapped) by this package; test them with errors.Is.
var (
	// ErrTimeout means no reply (or call-monitor heartbeat) arrived in time: oslo's MessagingTimeout.
	ErrTimeout = errors.New("rpc: timed out waiting for a reply")
	// ErrConnectionLost means the broker connection broke while a call was waiting for its reply.
	// The request may or may not have been executed by the server.
	ErrConnectionLost = errors.New("rpc: connection to the broker lost while waiting for the reply")
	// ErrClosed is returned by operations on a closed Conn.
	ErrClosed = errors.New("rpc: connection closed")
	// ErrBadMessage means an incoming message could not be decoded (bad JSON, wrong types, too big).
	ErrBadMessage = errors.New("rpc: malformed message")
	// ErrUnsupportedEnvelope means the oslo.version of an envelope is not 2.x.
	ErrUnsupportedEnvelope = errors.New("rpc: unsupported envelope version")
	// ErrPreconditionFailed is AMQP 406: an exchange or queue exists with other flags or arguments.
	// RabbitMQ closes the channel when it answers this.
	ErrPreconditionFailed = errors.New("rpc: broker precondition failed (406)")
	// ErrNotFound is AMQP 404: the exchange or queue does not exist.
	ErrNotFound = errors.New("rpc: broker object not found (404)")
	// ErrUnroutable means a mandatory message was returned by the broker (no queue bound).
	ErrUnroutable = errors.New("rpc: message unroutable")
	// ErrChannelClosed means the AMQP channel (or connection) used for the operation is closed.
	ErrChannelClosed = errors.New("rpc: channel closed")
)

// AMQP reply codes used by BrokerError.
const (
	CodeNotFound           = 404
	CodeResourceLocked     = 405
	CodePreconditionFailed = 406
	CodeChannelError       = 504
)

// BrokerError is an AMQP channel or connection exception as the broker reported it, e.g.
// {406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'nova' in vhost '/': ..."}.
// Both the amqp091 transport and the in-memory broker return it, so tests can compare the text.
type BrokerError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *BrokerError) Error() string { return fmt.Sprintf("amqp %d: %s", e.Code, e.Reason) }

// Is maps AMQP codes onto this package's sentinels.
func (e *BrokerError) Is(target error) bool {
	switch target {
	case ErrPreconditionFailed:
		return e.Code == CodePreconditionFailed
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrChannelClosed:
		return e.Code == CodeChannelError
	}
	return false
}
