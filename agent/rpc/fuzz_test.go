package rpc

import (
	"context"
	"testing"
	"unicode/utf8"
)

func addFixtureSeeds(f *testing.F) {
	for _, m := range loadFixtures(f) {
		f.Add([]byte(m.BodyRaw))
	}
	for _, s := range []string{`{}`, `null`, `[]`, `{"oslo.version": "2.0", "oslo.message": "{}"}`, `{"oslo.version": "2", "oslo.message": "x"}`,
		`{"oslo.version": "2.0", "oslo.message": "{\"method\": 1, \"args\": [], \"version\": null, \"_msg_id\": \"a\", \"_reply_q\": \"b\"}"}`} {
		f.Add([]byte(s))
	}
}

// FuzzDecodeEnvelope: never panics; a decoded message re-enveloped decodes to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		inner, err := DecodeEnvelope(body)
		if err != nil || !utf8.Valid(inner) {
			// Invalid UTF-8 cannot round-trip (JSON text is UTF-8; kombu rejects it too).
			return
		}
		again, err := EncodeEnvelope(inner)
		if err != nil {
			return // inner that is not valid UTF-8 JSON text cannot be re-encoded
		}
		inner2, err := DecodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if string(inner2) != string(inner) && isEnvelope(body) {
			t.Fatalf("round trip changed the message: %q -> %q", inner, inner2)
		}
	})
}

func isEnvelope(body []byte) bool {
	_, err := DecodeEnvelope(body)
	return err == nil && len(body) > 0 && body[0] == '{' && containsBytes(body, "oslo.message")
}

func containsBytes(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// FuzzDecodeRequest: parsing, dispatching and answering arbitrary input never panics, and every
// answer encodes.
func FuzzDecodeRequest(f *testing.F) {
	addFixtureSeeds(f)
	d := NewDispatcher(Endpoint{Version: "6.1", Methods: map[string]HandlerFunc{
		"get_console_output": func(context.Context, *Request) (any, error) { return "out", nil },
	}}, Endpoint{Namespace: "baseapi", Version: "1.1"})
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if req == nil {
			t.Fatal("nil request")
		}
		if err != nil {
			return
		}
		res, herr := d.Handle(context.Background(), req)
		var fail *Failure
		if herr != nil {
			fail = failureFromError(herr)
		}
		var raw []byte
		if res != nil {
			if raw, err = marshalCompact(res); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := encodeReply(req.MsgID, raw, fail, true); err != nil {
			t.Fatalf("reply does not encode: %v", err)
		}
	})
}
