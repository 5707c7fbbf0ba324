//go:build integration

package rpc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nova-container-agent/nova-container-agent/agent/conductor"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The interop tests run Debian's python3-oslo.messaging (apt install python3-oslo.messaging)
// through testdata/oslo_interop.py against our implementation, in both directions.

const pyExchange = "nca-test-py"

func pythonURL() string {
	// oslo maps amqp:// to its AMQP 1.0 driver; rabbit:// is the rabbit driver.
	u := rabbitURL()
	if rest, ok := strings.CutPrefix(u, "amqp://"); ok {
		return "rabbit://" + rest
	}
	return u
}

func requirePython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import oslo_messaging").CombinedOutput(); err != nil {
		t.Fatalf("python3-oslo.messaging is required (apt install python3-oslo.messaging): %v: %s", err, out)
	}
}

func realConn(t *testing.T, binary string) *rpc.Conn {
	t.Helper()
	rabbitHarness(t)
	c, err := rpc.Dial(t.Context(), rabbitURL(), rpc.WithBinary(binary), rpc.WithDefaultExchange(pyExchange),
		rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type goServer struct {
	casts    chan string
	contexts chan rpc.Context
}

func (g *goServer) handler() rpc.Handler {
	arg := func(r *rpc.Request, k string) any {
		var v any
		_ = json.Unmarshal(r.Args[k], &v)
		return v
	}
	return rpc.NewDispatcher(
		rpc.Endpoint{Namespace: "baseapi", Version: "1.1", Methods: map[string]rpc.HandlerFunc{
			"ping": func(_ context.Context, r *rpc.Request) (any, error) {
				return map[string]any{"service": "compute", "arg": arg(r, "arg")}, nil
			},
		}},
		rpc.Endpoint{Version: "6.1", Methods: map[string]rpc.HandlerFunc{
			"echo_arg": func(_ context.Context, r *rpc.Request) (any, error) {
				select {
				case g.contexts <- r.Context:
				default:
				}
				return arg(r, "arg"), nil
			},
			"not_found": func(context.Context, *rpc.Request) (any, error) {
				return nil, &rpc.Failure{Module: rpc.ModuleNova, Class: "InstanceNotFound", Message: "Instance x could not be found.",
					Kwargs: map[string]any{"instance_id": "x", "code": 404}}
			},
			"plain_error": func(context.Context, *rpc.Request) (any, error) { return nil, errors.New("disk on fire") },
			"slow": func(_ context.Context, r *rpc.Request) (any, error) {
				ms, _ := arg(r, "ms").(float64)
				time.Sleep(time.Duration(ms) * time.Millisecond)
				return "done", nil
			},
			"record": func(_ context.Context, r *rpc.Request) (any, error) {
				g.casts <- fmt.Sprint(arg(r, "v"))
				return nil, nil
			},
		}},
	)
}

func startGoServer(t *testing.T, topic string) *goServer {
	g := &goServer{casts: make(chan string, 10), contexts: make(chan rpc.Context, 10)}
	c := realConn(t, "nca-test-goserver")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, rpc.Target{Topic: topic, Server: "h1"}, g.handler()) }()
	t.Cleanup(func() { cancel(); <-done })
	// Ready once the server queue exists with a consumer: a Go call answers.
	cl := realConn(t, "nca-test-probe")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := cl.Call(t.Context(), rpc.Target{Topic: topic, Server: "h1", Version: "6.0"}, rpc.Context{}, "echo_arg", map[string]any{"arg": 1}, time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Go server not ready")
		}
	}
	<-g.contexts
	return g
}

func TestPythonClientCallsGoServer(t *testing.T) {
	requirePython(t)
	topic := "nca-test-py-" + uuid.NewString()[:8]
	g := startGoServer(t, topic)
	cmd := exec.Command("/usr/bin/python3", "testdata/oslo_interop.py", "client", pythonURL(), pyExchange, topic, "h1")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python client: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	type pyErr struct {
		Type    string   `json:"type"`
		MRO     []string `json:"mro"`
		ExcType string   `json:"exc_type"`
		Value   string   `json:"value"`
		Str     string   `json:"str"`
	}
	res := map[string]struct {
		OK     bool  `json:"ok"`
		Result any   `json:"result"`
		Error  pyErr `json:"error"`
	}{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Case   string `json:"case"`
			OK     bool   `json:"ok"`
			Result any    `json:"result"`
			Error  pyErr  `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("python output %q: %v", line, err)
		}
		res[r.Case] = struct {
			OK     bool  `json:"ok"`
			Result any   `json:"result"`
			Error  pyErr `json:"error"`
		}{r.OK, r.Result, r.Error}
		t.Logf("python %s: %s", r.Case, line)
	}
	if r := res["ping"]; !r.OK || !reflect.DeepEqual(r.Result, map[string]any{"service": "compute", "arg": "1.21 GigaWatts"}) {
		t.Errorf("ping: %+v", r)
	}
	if r := res["echo"]; !r.OK || r.Result != `héllo "quoted"` {
		t.Errorf("echo: %+v", r)
	}
	wantRemote := func(name, excType, value string) {
		r := res[name]
		if r.OK || r.Error.Type != "RemoteError" || r.Error.ExcType != excType || r.Error.Value != value {
			t.Errorf("%s: %+v, want RemoteError(%s, %q)", name, r, excType, value)
		}
	}
	wantRemote("no_such_method", "NoSuchMethod", "Endpoint does not support RPC method no_such_method")
	wantRemote("too_new", "UnsupportedVersion", "Endpoint does not support RPC version 6.2. Attempted method: echo_arg")
	wantRemote("raises_nova", "InstanceNotFound", "Instance x could not be found.")
	if r := res["raises_plain"]; r.OK || !strings.HasPrefix(r.Error.Type, "RuntimeError") || r.Error.Str != "disk on fire" || !contains(r.Error.MRO, "RuntimeError") {
		t.Errorf("raises_plain: %+v, want a RuntimeError re-created by the Python caller", r)
	}
	if r := res["monitored"]; !r.OK || r.Result != "done" {
		t.Errorf("call with call_monitor_timeout=2 on a 3.5 s method (needs our heartbeats): %+v", r)
	}
	if !res["cast"].OK || !res["fanout"].OK {
		t.Errorf("casts: %+v %+v", res["cast"], res["fanout"])
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-g.casts:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("casts from python received: %v", got)
		}
	}
	if !got["from-python"] || !got["fanout-python"] {
		t.Errorf("casts: %v", got)
	}
	select {
	case c := <-g.contexts:
		if c.RequestID() != "req-5e1f0c1a-0000-4000-8000-000000000001" || c["timestamp"] != "2026-11-23T13:58:49.058871" || !c.IsAdmin() {
			t.Errorf("context from python: %v", c)
		}
	default:
		t.Error("no context recorded")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func startPythonServer(t *testing.T, topic string) {
	t.Helper()
	requirePython(t)
	cmd := exec.Command("/usr/bin/python3", "testdata/oslo_interop.py", "server", pythonURL(), pyExchange, topic, "h1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("python server exited: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("python server not ready: %s", stderr.String())
	}
}

func TestGoClientCallsPythonServer(t *testing.T) {
	topic := "nca-test-pysrv-" + uuid.NewString()[:8]
	startPythonServer(t, topic)
	c := realConn(t, "nca-test-goclient")
	ctx := t.Context()
	tgt := rpc.Target{Topic: topic, Server: "h1", Version: "6.0"}
	res, err := c.Call(ctx, rpc.Target{Topic: topic, Namespace: "baseapi", Version: "1.0"}, conductor.AdminContext(time.Now(), conductor.NewRequestID()), "ping", map[string]any{"arg": "1.21 GigaWatts"}, 10*time.Second)
	if err != nil || string(res) != `{"service":"python","arg":"1.21 GigaWatts"}` {
		t.Fatalf("ping python: %s %v", res, err)
	}
	rctx := rpc.Context{"request_id": "req-1", "nca_extra": []any{"x", 1.5}}
	res, err = c.Call(ctx, tgt, rctx, "echo_ctx", map[string]any{"a": "é"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var echoed struct {
		Ctxt   map[string]any `json:"ctxt"`
		Kwargs map[string]any `json:"kwargs"`
	}
	if err := json.Unmarshal(res, &echoed); err != nil {
		t.Fatal(err)
	}
	if echoed.Ctxt["request_id"] != "req-1" || fmt.Sprint(echoed.Ctxt["nca_extra"]) != "[x 1.5]" || echoed.Kwargs["a"] != "é" {
		t.Fatalf("python saw: %+v", echoed)
	}
	// Python's own failures match the helpers byte for byte in what they carry.
	checkFailure := func(method, version string, want *rpc.Failure) {
		t.Helper()
		_, err := c.Call(ctx, rpc.Target{Topic: topic, Server: "h1", Version: version}, rctx, method, nil, 10*time.Second)
		var f *rpc.Failure
		if !errors.As(err, &f) {
			t.Fatalf("%s: %v, want a failure", method, err)
		}
		if f.Module != want.Module || f.Class != want.Class || f.Message != want.Message || !reflect.DeepEqual(f.Args, want.Args) || len(f.Kwargs) != len(want.Kwargs) {
			t.Fatalf("%s from python:\n got  %+v\n want %+v", method, f, want)
		}
		if len(f.Traceback) == 0 || f.Traceback[0] != "Traceback (most recent call last):\n" {
			t.Fatalf("%s: traceback %q", method, f.Traceback)
		}
	}
	checkFailure("no_such", "6.0", rpc.NoSuchMethod("no_such"))
	checkFailure("echo_arg", "6.2", rpc.UnsupportedVersion("6.2", "echo_arg"))
	checkFailure("echo_arg", "5.0", rpc.UnsupportedVersion("5.0", "echo_arg"))
	checkFailure("boom", "6.0", &rpc.Failure{Module: "builtins", Class: "ValueError", Message: "python says no", Args: []any{"python says no"}, Kwargs: map[string]any{}})
	// Python's server heartbeats keep our call-monitor alive.
	res, err = c.CallWithOptions(ctx, tgt, rctx, "slow", map[string]any{"ms": 3500}, rpc.CallOptions{Timeout: 20 * time.Second, MonitorTimeout: 2 * time.Second})
	if err != nil || string(res) != `"done"` {
		t.Fatalf("monitored call to python: %s %v", res, err)
	}
}

// TestRepliesByteIdenticalToPython sends the same raw request to a Python server and to ours and
// compares the reply bodies byte for byte (the random _unique_id aside), for a result and for
// NoSuchMethod/UnsupportedVersion failures (their tracebacks aside).
func TestRepliesByteIdenticalToPython(t *testing.T) {
	pyTopic := "nca-test-pybytes-" + uuid.NewString()[:8]
	goTopic := "nca-test-gobytes-" + uuid.NewString()[:8]
	startPythonServer(t, pyTopic)
	startGoServer(t, goTopic)
	tr, err := rpc.DialAMQP(t.Context(), rabbitURL(), amqp.Table{"connection_name": "nca-test-raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ch, err := tr.Channel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	replyQ := "reply_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if err := ch.DeclareQueue(t.Context(), rpc.QueueSpec{Name: replyQ, Args: amqp.Table{"x-expires": int32(1800000)}}); err != nil {
		t.Fatal(err)
	}
	defer ch.DeleteQueue(context.Background(), replyQ)
	cch, _ := tr.Channel(t.Context())
	ds, err := cch.Consume(t.Context(), replyQ, "1")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(topic, method, version, args string) string {
		t.Helper()
		msgID := "0123456789abcdef0123456789abcdef"
		inner := fmt.Sprintf(`{"method": %q, "args": %s, "version": %q, "_msg_id": %q, "_reply_q": %q, "_timeout": null, "_unique_id": %q, "_context_request_id": "req-x"}`,
			method, args, version, msgID, replyQ, strings.ReplaceAll(uuid.NewString(), "-", ""))
		env, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": inner})
		if err := ch.Publish(t.Context(), pyExchange, topic+".h1", false, rpc.Publishing{Body: env, ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ds:
			d.Ack()
			if d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != 2 || d.Priority != 0 || d.Expiration != "" {
				t.Fatalf("reply properties from %s: %+v", topic, d.Publishing)
			}
			return string(d.Body)
		case <-time.After(15 * time.Second):
			t.Fatalf("no reply from %s", topic)
		}
		return ""
	}
	uniqueRE := regexp.MustCompile(`\\"_unique_id\\": \\"[0-9a-f]{32}\\"`)
	tbRE := regexp.MustCompile(`\\\\\\"tb\\\\\\": \[.*?\], \\\\\\"args`)
	norm := func(s string) string {
		s = uniqueRE.ReplaceAllString(s, `\"_unique_id\": \"U\"`)
		return tbRE.ReplaceAllString(s, `TB, \\\"args`)
	}
	for _, c := range []struct{ method, version, args string }{
		{"echo_arg", "6.0", `{"arg": "h\u00e9llo <&> \"q\" \ud83d\ude00 \t"}`},
		{"echo_arg", "6.1", `{"arg": [1, -2.5, true, null, {"k": "v"}]}`},
		{"no_such", "6.0", `{}`},
		{"echo_arg", "7.0", `{"arg": 1}`},
	} {
		py := norm(ask(pyTopic, c.method, c.version, c.args))
		gob := norm(ask(goTopic, c.method, c.version, c.args))
		if py != gob {
			t.Errorf("%s %s reply differs:\n python %s\n go     %s", c.method, c.version, py, gob)
		} else {
			t.Logf("identical: %s", py)
		}
	}
}
