// Package rpctest is the test kit of package rpc: Broker, an in-memory AMQP broker with
// RabbitMQ's semantics for what oslo.messaging uses (its Dial is an rpc.Dialer), and
// RunConformance, the one suite that both Broker and a real RabbitMQ must pass, so that unit tests
// written against the fake mean something against the real thing.
//
//	b := rpctest.NewBroker()
//	conn, err := rpc.Dial(ctx, "rabbit://fake/", rpc.WithDialer(b.Dial))
//
//	func TestConformance(t *testing.T) { rpctest.RunConformance(t, rpctest.FakeHarness()) }
package rpctest
