// Package rpc speaks oslo.messaging 14's rabbit driver on the wire, so that nova's and neutron's
// Python services cannot tell this agent from nova-compute or the OVS agent.
//
// What "wire-exact" covers (each point is tested against recorded nova traffic, real RabbitMQ and
// Debian's python3-oslo.messaging): the double-encoded 2.0 envelope with Python's json.dumps
// layout (", ", ": ", ensure_ascii), oslo's key order for requests, replies and failures; AMQP
// properties (application/json, utf-8, delivery_mode 2, expiration on calls only); exchange and
// queue flags (x-expires only on reply and fanout queues, as int32 like py-amqp); replies through
// the default exchange with mandatory=true and oslo's retry on a missing reply queue; call-monitor
// heartbeats; ack before dispatch; _unique_id dedupe; RPCDispatcher's namespace/version rules with
// the exact NoSuchMethod/UnsupportedVersion failures.
//
// Usage:
//
//	conn, err := rpc.Dial(ctx, "rabbit://guest:guest@127.0.0.1:5672/",
//		rpc.WithBinary("nova-compute"), rpc.WithDefaultExchange("nova"))
//	...
//	d := rpc.NewDispatcher(
//		rpc.Endpoint{Version: "6.1", Methods: map[string]rpc.HandlerFunc{"get_console_output": h}},
//		rpc.Endpoint{Namespace: "baseapi", Version: "1.1", Methods: map[string]rpc.HandlerFunc{"ping": ping}})
//	go conn.Serve(ctx, rpc.Target{Topic: "compute", Server: host}, d)
//	res, err := conn.Call(ctx, rpc.Target{Topic: "conductor", Version: "3.0"}, conductor.AdminContext(time.Now(), conductor.NewRequestID()),
//		"object_class_action_versions", args, 0)
//
// Tests use rpctest.Broker (WithDialer) and rpctest.RunConformance.
package rpc
