//go:build integration

package rpc_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nova-container-agent/nova-container-agent/agent/rpc"
	"github.com/nova-container-agent/nova-container-agent/agent/rpc/rpctest"
)

// rabbitURL is the broker the integration tests use (NCA_RABBIT_URL).
func rabbitURL() string {
	if u := os.Getenv("NCA_RABBIT_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// rabbitHarness targets the real RabbitMQ; a broker that cannot be reached fails the test.
func rabbitHarness(t *testing.T) rpctest.Harness {
	t.Helper()
	tr, err := rpc.DialAMQP(t.Context(), rabbitURL(), nil)
	if err != nil {
		t.Fatalf("RabbitMQ at %s (NCA_RABBIT_URL) is required for integration tests: %v", rabbitURL(), err)
	}
	tr.Close()
	return rpctest.Harness{Name: "rabbitmq", URL: rabbitURL(), Dialer: rpc.DialAMQP, CloseConnections: closeRabbitConnections}
}

// closeRabbitConnections closes, with rabbitmqctl, only the connections whose connection_name
// starts with prefix (never a teammate's).
func closeRabbitConnections(t testing.TB, prefix string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "list_connections", "pid", "client_properties", "-q").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		pid, props, ok := strings.Cut(sc.Text(), "\t")
		if !ok || !strings.Contains(props, `{"connection_name","`+prefix) {
			continue
		}
		if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "nca conformance test").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl close_connection %s: %v: %s", pid, err, out)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no RabbitMQ connection named %s*", prefix)
	}
	time.Sleep(100 * time.Millisecond)
}

func TestConformanceRabbitMQ(t *testing.T) {
	rpctest.RunConformance(t, rabbitHarness(t))
}

func BenchmarkServeDispatchRabbitMQ(b *testing.B) { benchServeDispatch(b, rabbitURL(), rpc.DialAMQP) }

func BenchmarkCallLatencyRabbitMQ(b *testing.B) { benchCallLatency(b, rabbitURL(), rpc.DialAMQP) }
