package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Envelope keys and version (oslo_messaging/_drivers/common.py).
const (
	envelopeVersionKey = "oslo.version"
	envelopeMessageKey = "oslo.message"
	envelopeVersion    = "2.0"
	contextPrefix      = "_context_"
)

// EncodeEnvelope wraps an application message (already JSON) in oslo's 2.0 envelope, byte for byte
// as serialize_msg + json.dumps produce it: {"oslo.version": "2.0", "oslo.message": "<json>"}.
func EncodeEnvelope(inner []byte) ([]byte, error) {
	return pyDumps(object{{envelopeVersionKey, envelopeVersion}, {envelopeMessageKey, string(inner)}})
}

// DecodeEnvelope returns the application message carried by body. Like oslo's deserialize_msg, a
// JSON object without both envelope keys is an un-enveloped (1.0) message and returned as is; an
// envelope must have a compatible version (major 2) and a string message.
func DecodeEnvelope(body []byte) (json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("decode envelope: %w: %w", ErrBadMessage, err)
	}
	if top == nil {
		return nil, fmt.Errorf("decode envelope: %w: body is null", ErrBadMessage)
	}
	rawVer, hasVer := top[envelopeVersionKey]
	rawMsg, hasMsg := top[envelopeMessageKey]
	if !hasVer || !hasMsg {
		return json.RawMessage(body), nil
	}
	var ver string
	if err := json.Unmarshal(rawVer, &ver); err != nil {
		return nil, fmt.Errorf("decode envelope: %w: oslo.version is not a string", ErrBadMessage)
	}
	ok, f := versionCompatible(envelopeVersion, ver)
	if f != nil || !ok {
		return nil, fmt.Errorf("decode envelope version %q: %w", ver, ErrUnsupportedEnvelope)
	}
	var inner string
	if err := json.Unmarshal(rawMsg, &inner); err != nil {
		return nil, fmt.Errorf("decode envelope: %w: oslo.message is not a string", ErrBadMessage)
	}
	return json.RawMessage(inner), nil
}

// versionCompatible is oslo's _utils.version_is_compatible: same major, requested minor not above
// the implemented one, and for equal minors the revision not above either. Non-numeric parts are
// an error, as int() raises in Python.
func versionCompatible(implemented, requested string) (bool, *Failure) {
	rp := strings.Split(requested, ".")
	ip := strings.Split(implemented, ".")
	part := func(p []string, i int) (int, *Failure) {
		if i >= len(p) {
			if i == 2 {
				return 0, nil
			}
			return 0, pyException("IndexError", "list index out of range")
		}
		n, err := strconv.Atoi(strings.TrimSpace(p[i]))
		if err != nil {
			return 0, pyException("ValueError", fmt.Sprintf("invalid literal for int() with base 10: '%s'", p[i]))
		}
		return n, nil
	}
	var v [2][3]int
	for i, p := range [][]string{rp, ip} {
		for j := 0; j < 3; j++ {
			n, f := part(p, j)
			if f != nil {
				return false, f
			}
			v[i][j] = n
		}
	}
	req, imp := v[0], v[1]
	switch {
	case req[0] != imp[0], req[1] > imp[1], req[1] == imp[1] && req[2] > imp[2]:
		return false, nil
	}
	return true, nil
}

// Request is one decoded incoming RPC message.
type Request struct {
	Method string
	// Namespace is "" for the null namespace (the key absent or null).
	Namespace string
	// Version is the requested version; "1.0" when the key is absent (oslo's default).
	Version string
	Args    map[string]json.RawMessage
	Context Context
	// Call is true when the request expects a reply (it carries _reply_q and _msg_id).
	Call bool

	// MsgID and ReplyQueue identify where the reply goes (calls only).
	MsgID, ReplyQueue string
	// UniqueID is _unique_id, used for duplicate suppression ("" if absent).
	UniqueID string
	// MonitorTimeout is _timeout in seconds (call-monitor); 0 when absent or null.
	MonitorTimeout float64

	methodMissing bool // the "method" key was absent or null (Python's None)
	versionNull   bool // "version": null
}

// DecodeRequest decodes an oslo request (envelope included). On error it still returns as much as
// it could read (at least MsgID and ReplyQueue when present) so that a failure reply can be sent.
func DecodeRequest(body []byte) (*Request, error) {
	inner, err := DecodeEnvelope(body)
	if err != nil {
		return &Request{}, err
	}
	return decodeMessage(inner)
}

func decodeMessage(inner []byte) (*Request, error) {
	req := &Request{Version: "1.0"}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(inner, &m); err != nil {
		return req, fmt.Errorf("decode request: %w: %w", ErrBadMessage, err)
	}
	if m == nil {
		return req, fmt.Errorf("decode request: %w: message is null", ErrBadMessage)
	}
	// Reply coordinates first, leniently, so that later errors can be reported to the caller.
	str := func(key string) (string, bool, error) {
		raw, ok := m[key]
		if !ok || isNull(raw) {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, fmt.Errorf("decode request: %w: %s is not a string", ErrBadMessage, key)
		}
		return s, true, nil
	}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	var err1, err2 error
	req.MsgID, _, err1 = str("_msg_id")
	req.ReplyQueue, _, err2 = str("_reply_q")
	keep(err1)
	keep(err2)
	req.Call = req.MsgID != "" && req.ReplyQueue != ""
	if !req.Call {
		req.MsgID, req.ReplyQueue = "", ""
	}
	var err error
	req.UniqueID, _, err = str("_unique_id")
	keep(err)
	if raw, ok := m["_timeout"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.MonitorTimeout); err != nil {
			keep(fmt.Errorf("decode request: %w: _timeout is not a number", ErrBadMessage))
		}
	}
	var present bool
	req.Method, present, err = str("method")
	keep(err)
	req.methodMissing = !present
	req.Namespace, _, err = str("namespace")
	keep(err)
	if raw, ok := m["version"]; ok {
		if isNull(raw) {
			req.Version, req.versionNull = "", true
		} else if err := json.Unmarshal(raw, &req.Version); err != nil {
			keep(fmt.Errorf("decode request: %w: version is not a string", ErrBadMessage))
		}
	}
	req.Args = map[string]json.RawMessage{}
	if raw, ok := m["args"]; ok && !isNull(raw) {
		var args map[string]json.RawMessage
		if err := json.Unmarshal(raw, &args); err != nil {
			keep(fmt.Errorf("decode request: %w: args is not an object", ErrBadMessage))
		} else {
			req.Args = args
		}
	}
	req.Context = Context{}
	for k, raw := range m {
		if !strings.HasPrefix(k, contextPrefix) {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			keep(fmt.Errorf("decode request: %w: %s: %w", ErrBadMessage, k, err))
			continue
		}
		req.Context[k[len(contextPrefix):]] = v
	}
	return req, firstErr
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// newUniqueID is uuid4().hex, the form of _msg_id, _unique_id and reply queue suffixes.
func newUniqueID() string {
	u := uuid.New()
	var b [32]byte
	const hx = "0123456789abcdef"
	for i, c := range u {
		b[2*i], b[2*i+1] = hx[c>>4], hx[c&0xF]
	}
	return string(b[:])
}

// outgoing describes a request to encode.
type outgoing struct {
	method, namespace, version string
	args                       map[string]any
	ctx                        Context
	msgID, replyQ              string // set for calls
	monitor                    float64
	uniqueID                   string
}

// encodeRequest builds the request with oslo's key order (method, args, namespace, version,
// _msg_id, _reply_q, _timeout, _unique_id, _context_*) and wraps it in the envelope.
func encodeRequest(o outgoing) ([]byte, error) {
	args := o.args
	if args == nil {
		args = map[string]any{}
	}
	msg := object{{"method", o.method}, {"args", args}}
	if o.namespace != "" {
		msg = append(msg, kv{"namespace", o.namespace})
	}
	if o.version != "" {
		msg = append(msg, kv{"version", o.version})
	}
	if o.msgID != "" {
		var timeout any
		if o.monitor > 0 {
			timeout = o.monitor
		}
		msg = append(msg, kv{"_msg_id", o.msgID}, kv{"_reply_q", o.replyQ}, kv{"_timeout", timeout})
	}
	msg = append(msg, kv{"_unique_id", o.uniqueID})
	for _, k := range o.ctx.orderedKeys() {
		msg = append(msg, kv{contextPrefix + k, o.ctx[k]})
	}
	inner, err := pyDumps(msg)
	if err != nil {
		return nil, fmt.Errorf("encode request %s: %w", o.method, err)
	}
	return EncodeEnvelope(inner)
}

// reply is one decoded reply message.
type reply struct {
	MsgID   string
	Result  json.RawMessage // nil when null
	Failure *Failure
	Ending  bool
}

// encodeReply builds a reply exactly as AMQPIncomingMessage._send_reply does: result, failure,
// ending, _msg_id, _unique_id - all of them always present.
func encodeReply(msgID string, result json.RawMessage, failure *Failure, ending bool) ([]byte, error) {
	var fail any
	if failure != nil {
		s, err := failure.encode()
		if err != nil {
			return nil, err
		}
		fail = s
	}
	var res any
	if len(result) > 0 {
		res = result
	}
	inner, err := pyDumps(object{{"result", res}, {"failure", fail}, {"ending", ending}, {"_msg_id", msgID}, {"_unique_id", newUniqueID()}})
	if err != nil {
		return nil, fmt.Errorf("encode reply to %s: %w", msgID, err)
	}
	return EncodeEnvelope(inner)
}

// decodeReply parses a reply. A missing "failure" key is an error (Python raises KeyError), a
// missing "ending" means false.
func decodeReply(body []byte) (*reply, error) {
	inner, err := DecodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(inner, &m); err != nil || m == nil {
		return nil, fmt.Errorf("decode reply: %w: not an object", ErrBadMessage)
	}
	r := &reply{}
	if raw, ok := m["_msg_id"]; ok {
		if err := json.Unmarshal(raw, &r.MsgID); err != nil {
			return nil, fmt.Errorf("decode reply: %w: _msg_id is not a string", ErrBadMessage)
		}
	}
	rawFail, ok := m["failure"]
	if !ok {
		return r, fmt.Errorf("decode reply %s: %w: no failure key", r.MsgID, ErrBadMessage)
	}
	if !isNull(rawFail) {
		var s string
		if err := json.Unmarshal(rawFail, &s); err != nil {
			return r, fmt.Errorf("decode reply %s: %w: failure is not a string", r.MsgID, ErrBadMessage)
		}
		if s != "" {
			if r.Failure, err = decodeFailure(s); err != nil {
				return r, err
			}
		}
	}
	if raw, ok := m["result"]; ok && !isNull(raw) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err == nil {
			r.Result = buf.Bytes()
		} else {
			r.Result = raw
		}
	}
	if raw, ok := m["ending"]; ok {
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			r.Ending = b
		}
	}
	return r, nil
}
