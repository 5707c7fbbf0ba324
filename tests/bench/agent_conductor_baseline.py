#!/usr/bin/python3
"""Baseline for agentrpc's conductor figure: the same conductor round trip from Python.

Usage: /usr/bin/python3 agent_conductor_baseline.py [--url U] [-n 200] [--mode nova|oslo]
       [--raw FILE] HOST

mode nova: nova-compute's own path, under eventlet like nova-compute: NovaObject's
  indirection_api = nova.conductor.rpcapi.ConductorAPI, then
  objects.Service.get_by_host_and_binary(admin context, HOST, "nova-compute")
  (serializer, object_class_action_versions with the object manifest, hydration).
mode oslo: a plain oslo.messaging RPCClient call of object_class_action_versions with
  the same arguments and manifest, no nova serializer, the reply left as a dict.

Prints one "key=value" line like agentrpc. Needs Debian's python3-nova (/usr/bin/python3).
"""
import argparse
import os
import sys
import tempfile
import time


def percentile(xs, p):
    s = sorted(xs)
    i = max(1, (len(s) * p + 99) // 100)
    return s[i - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("--url", default=os.environ.get(
        "NCA_TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/"))
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--mode", choices=("nova", "oslo"), default="nova")
    ap.add_argument("--raw", help="append each round trip's milliseconds here")
    args = ap.parse_args()

    if args.mode == "nova":
        import nova.monkey_patch  # noqa: F401 - nova-compute runs under eventlet
    from nova import config as nova_config
    from nova import context as nova_context
    from nova import objects
    from nova import rpc
    from oslo_versionedobjects import base as ovo_base

    # nova-compute's start-up: control_exchange "nova", CONF from a config file holding
    # transport_url (oslo.messaging registers that option itself), the rpc transport.
    rpc.set_defaults(control_exchange="nova")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[DEFAULT]\ntransport_url = %s\n" % args.url)
    try:
        nova_config.parse_args(["nca-bench", "--config-file", f.name],
                               default_config_files=[], configure_db=False,
                               init_rpc=args.mode == "nova")
    finally:
        os.unlink(f.name)
    objects.register_all()
    ctxt = nova_context.get_admin_context()

    if args.mode == "nova":
        from nova.conductor import rpcapi as conductor_rpcapi
        from nova.objects import base as objects_base
        objects_base.NovaObject.indirection_api = conductor_rpcapi.ConductorAPI()

        def call():
            try:
                objects.Service.get_by_host_and_binary(
                    ctxt, args.host, "nova-compute")
            except Exception as exc:  # noqa: B902
                if type(exc).__name__ not in ("ComputeHostNotFound",
                                              "HostBinaryNotFound",
                                              "ServiceNotFound"):
                    raise
    else:
        import oslo_messaging as messaging
        transport = messaging.get_rpc_transport(nova_config.CONF, url=args.url)
        target = messaging.Target(exchange="nova", topic="conductor",
                                  version="3.0")
        factory = getattr(messaging, "get_rpc_client", None) or messaging.RPCClient
        client = factory(transport, target, timeout=30)
        versions = ovo_base.obj_tree_get_versions("Service")
        cdict = ctxt.to_dict()

        def call():
            client.prepare().call(
                cdict, "object_class_action_versions", objname="Service",
                objmethod="get_by_host_and_binary", object_versions=versions,
                args=(args.host, "nova-compute"), kwargs={})

    for _ in range(10):
        call()
    lat = []
    start = time.monotonic()
    for _ in range(args.n):
        t0 = time.monotonic()
        call()
        lat.append(time.monotonic() - t0)
    wall = time.monotonic() - start
    if args.raw:
        with open(args.raw, "a") as f:
            f.writelines("%.3f\n" % (x * 1e3) for x in lat)
    print("calls=%d p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f max_ms=%.2f calls_per_s=%.0f"
          % (args.n, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3,
             sum(lat) / len(lat) * 1e3, max(lat) * 1e3, args.n / wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
